/* The request's cniVersion, found as cni/skel.py request_version() finds it: json.loads() of the
 * whole stdin, a top-level object, the last "cniVersion" key, a non-empty string; anything
 * else (invalid UTF-8 or JSON, trailing data, another type) means CURRENT_VERSION. The value
 * is re-emitted as json.dumps() writes a str (ensure_ascii, lowercase \uXXXX, surrogate pairs).
 *
 * The parser is iterative (no recursion), allocates nothing, and validates the whole document
 * with Python's rules: NaN/Infinity/-Infinity literals, no control characters in strings,
 * integers of at most 4300 digits (int_max_str_digits), bytes decoded as UTF-8 with
 * surrogatepass after an optional BOM. Known difference: a UTF-16/32 document (which
 * json.loads detects by its NUL bytes) is not decoded here and answers CURRENT_VERSION.
 * The supported-version list must equal cni.protocol.SUPPORTED_VERSIONS (tested).
 */
#ifndef SRIOV_SHIM_VERSION_JSON_H
#define SRIOV_SHIM_VERSION_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CURRENT_VERSION "1.1.0"
#define SUPPORTED_VERSIONS_JSON "[\"0.1.0\", \"0.2.0\", \"0.3.0\", \"0.3.1\", \"0.4.0\", \"1.0.0\", \"1.1.0\"]"
#define JSON_MAX_DEPTH 990 /* about where CPython's json raises RecursionError */
#define JSON_MAX_INT_DIGITS 4300

struct buf;
static int buf_add(struct buf *b, const void *data, size_t len);

/* strict UTF-8, but UTF-8-encoded surrogates accepted (Python's 'surrogatepass') */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff)
            return 0;
        i += len;
    }
    return 1;
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex4(const unsigned char *p)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = p[k];
        v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

static void emit_unit(struct buf *o, unsigned u)
{
    char esc[8];
    switch (u) {
    case '"': buf_add(o, "\\\"", 2); return;
    case '\\': buf_add(o, "\\\\", 2); return;
    case '\n': buf_add(o, "\\n", 2); return;
    case '\r': buf_add(o, "\\r", 2); return;
    case '\t': buf_add(o, "\\t", 2); return;
    case '\b': buf_add(o, "\\b", 2); return;
    case '\f': buf_add(o, "\\f", 2); return;
    }
    if (u >= 0x20 && u < 0x7f) {
        char c = (char)u;
        buf_add(o, &c, 1);
    } else {
        snprintf(esc, sizeof esc, "\\u%04x", u & 0xffff);
        buf_add(o, esc, 6);
    }
}

/* Scan the string starting at s[*pos] == '"' (input already UTF-8-valid). Each UTF-16 code
 * unit is compared with `key` (sets *is_key) and, if `o`, emitted. Returns 0 when malformed. */
static int scan_string(const unsigned char *s, size_t n, size_t *pos, const char *key, int *is_key,
                       size_t *units, struct buf *o)
{
    size_t i = *pos + 1, count = 0, klen = key ? strlen(key) : 0;
    int match = key != NULL;
    for (;;) {
        if (i >= n)
            return 0;
        unsigned c = s[i];
        unsigned u[2];
        int nu = 1;
        if (c == '"') {
            i++;
            break;
        } else if (c < 0x20) {
            return 0; /* strict: no raw control characters */
        } else if (c == '\\') {
            if (i + 1 >= n)
                return 0;
            unsigned char e = s[i + 1];
            i += 2;
            switch (e) {
            case '"': u[0] = '"'; break;
            case '\\': u[0] = '\\'; break;
            case '/': u[0] = '/'; break;
            case 'b': u[0] = '\b'; break;
            case 'f': u[0] = '\f'; break;
            case 'n': u[0] = '\n'; break;
            case 'r': u[0] = '\r'; break;
            case 't': u[0] = '\t'; break;
            case 'u':
                if (n - i < 4 || !is_hex(s[i]) || !is_hex(s[i + 1]) || !is_hex(s[i + 2]) || !is_hex(s[i + 3]))
                    return 0;
                u[0] = hex4(s + i);
                i += 4;
                break;
            default:
                return 0;
            }
        } else if (c < 0x80) {
            u[0] = c;
            i++;
        } else {
            size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
            uint32_t cp = c & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
            for (size_t k = 1; k < len; k++)
                cp = cp << 6 | (s[i + k] & 0x3f);
            i += len;
            if (cp >= 0x10000) {
                cp -= 0x10000;
                u[0] = 0xd800 | (cp >> 10), u[1] = 0xdc00 | (cp & 0x3ff), nu = 2;
            } else {
                u[0] = cp;
            }
        }
        for (int k = 0; k < nu; k++, count++) {
            if (match && (count >= klen || (unsigned char)key[count] != u[k]))
                match = 0;
            if (o)
                emit_unit(o, u[k]);
        }
    }
    if (is_key)
        *is_key = match && count == klen;
    if (units)
        *units = count;
    *pos = i;
    return 1;
}

static int scan_number(const unsigned char *s, size_t n, size_t *pos)
{
    size_t i = *pos, digits = 0;
    int integral = 1;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0') {
        i++, digits = 1;
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    } else {
        return 0;
    }
    if (i + 1 < n && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
        integral = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < n && s[j] >= '0' && s[j] <= '9') {
            integral = 0;
            for (i = j; i < n && s[i] >= '0' && s[i] <= '9'; i++)
                ;
        }
    }
    if (integral && digits > JSON_MAX_INT_DIGITS)
        return 0; /* int(): "Exceeds the limit (4300 digits) for integer string conversion" */
    *pos = i;
    return 1;
}

static int scan_word(const unsigned char *s, size_t n, size_t *pos, const char *word)
{
    size_t len = strlen(word);
    if (n - *pos < len || memcmp(s + *pos, word, len) != 0)
        return 0;
    *pos += len;
    return 1;
}

static void skip_ws(const unsigned char *s, size_t n, size_t *pos)
{
    while (*pos < n && (s[*pos] == ' ' || s[*pos] == '\t' || s[*pos] == '\n' || s[*pos] == '\r'))
        (*pos)++;
}

/* Position of the request's cniVersion string (its opening quote), or 0 when there is none. */
static size_t find_version(const unsigned char *s, size_t n)
{
    unsigned char stack[JSON_MAX_DEPTH]; /* '{' or '[' */
    size_t depth = 0, i = 0, found = 0;
    if (n >= 4 && ((s[0] == 0xff && s[1] == 0xfe && !s[2] && !s[3]) || (!s[0] && !s[1] && s[2] == 0xfe && s[3] == 0xff)))
        return 0; /* UTF-32 BOM */
    if (n >= 2 && ((s[0] == 0xff && s[1] == 0xfe) || (s[0] == 0xfe && s[1] == 0xff)))
        return 0; /* UTF-16 BOM */
    if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
        i = 3; /* utf-8-sig */
    else if ((n >= 4 && (!s[0] || !s[1])) || (n == 2 && (!s[0] || !s[1])))
        return 0; /* json.detect_encoding: UTF-16/32 without BOM */
    if (!utf8_ok(s + i, n - i))
        return 0;
    int version_key = 0; /* the value about to be parsed belongs to a top-level "cniVersion" */
    skip_ws(s, n, &i);
value:
    if (i >= n)
        return 0;
    switch (s[i]) {
    case '{':
    case '[':
        if (depth == JSON_MAX_DEPTH)
            return 0;
        if (depth == 1 && version_key)
            found = 0; /* last key wins: not a string */
        stack[depth++] = s[i++];
        skip_ws(s, n, &i);
        if (i < n && s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
            i++, depth--;
            goto after;
        }
        if (stack[depth - 1] == '[')
            goto value;
        goto key;
    case '"': {
        size_t start = i, units = 0;
        if (!scan_string(s, n, &i, NULL, NULL, &units, NULL))
            return 0;
        if (depth == 1 && version_key)
            found = units ? start : 0;
        goto after;
    }
    default:
        if (depth == 1 && version_key)
            found = 0;
        if (!(scan_word(s, n, &i, "null") || scan_word(s, n, &i, "true") || scan_word(s, n, &i, "false") ||
              scan_word(s, n, &i, "NaN") || scan_word(s, n, &i, "Infinity") ||
              scan_word(s, n, &i, "-Infinity") || scan_number(s, n, &i)))
            return 0;
        goto after;
    }
key:
    if (i >= n || s[i] != '"')
        return 0;
    if (!scan_string(s, n, &i, "cniVersion", &version_key, NULL, NULL))
        return 0;
    skip_ws(s, n, &i);
    if (i >= n || s[i] != ':')
        return 0;
    i++;
    skip_ws(s, n, &i);
    goto value;
after:
    version_key = 0;
    skip_ws(s, n, &i);
    if (depth == 0)
        return i == n ? found : 0;
    if (i >= n)
        return 0;
    if (s[i] == ',') {
        i++;
        skip_ws(s, n, &i);
        if (stack[depth - 1] == '[')
            goto value;
        goto key;
    }
    if (s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
        i++, depth--;
        goto after;
    }
    return 0;
}

/* Append the request's cniVersion (or CURRENT_VERSION) as a JSON string. */
static void request_version_json(struct buf *o, const unsigned char *s, size_t n)
{
    size_t at = s ? find_version(s, n) : 0;
    if (!at) {
        buf_add(o, "\"" CURRENT_VERSION "\"", sizeof CURRENT_VERSION + 1);
        return;
    }
    buf_add(o, "\"", 1);
    scan_string(s, n, &at, NULL, NULL, NULL, o);
    buf_add(o, "\"", 1);
}

#endif
