/* sriov-shim: the static native `sriov` CNI executable (docs/shim-protocol.md).
 *
 * It forwards one CNI invocation (CNI_* and PATH from the environment, stdin) to the resident
 * agent over a unix socket and prints the agent's reply, exactly like cni/shim.py on its agent
 * path, but without needing Python on the node. VERSION is answered here. With no agent it
 * execs the Python shim installed next to it (`sriov-py`, standalone mode) when there is one,
 * else answers CNI code 11 ("try again later").
 *
 * Every output is either the agent's reply verbatim or exactly one error JSON document on
 * stdout, formatted as Python's json.dumps() would, so both shims are byte-identical on error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "version_json.h"

#define DEFAULT_SOCKET "/run/sriov-k8s/cni-agent.sock"
#define FRAME_LIMIT (64u << 20) /* per frame, both directions (cni/shim.py FRAME_LIMIT) */
#define DEFAULT_TIMEOUT_MS 120000L
#define CODE_INVALID_ENV 4
#define CODE_IO 5
#define CODE_INVALID_CONFIG 7
#define CODE_TRY_AGAIN 11
#define CODE_UNTRUSTED_AGENT 109
#define FALLBACK_NAME "sriov-py"

extern char **environ;

struct buf {
    unsigned char *data;
    size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return -1;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_add(struct buf *b, const void *data, size_t len)
{
    if (buf_reserve(b, len))
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static int buf_u32(struct buf *b, uint32_t v)
{
    unsigned char be[4];
    put_be32(be, v);
    return buf_add(b, be, 4);
}

/* ------------------------------------------------------------------ output */

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A JSON string as json.dumps(ensure_ascii=True) writes one; non-UTF-8 bytes as \u00XX. */
static void json_str_bytes(struct buf *o, const char *s)
{
    buf_add(o, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': buf_add(o, "\\\"", 2); continue;
        case '\\': buf_add(o, "\\\\", 2); continue;
        case '\n': buf_add(o, "\\n", 2); continue;
        case '\r': buf_add(o, "\\r", 2); continue;
        case '\t': buf_add(o, "\\t", 2); continue;
        case '\b': buf_add(o, "\\b", 2); continue;
        case '\f': buf_add(o, "\\f", 2); continue;
        }
        if (*p >= 0x20 && *p < 0x7f) {
            buf_add(o, p, 1);
        } else {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            buf_add(o, esc, 6);
        }
    }
    buf_add(o, "\"", 1);
}

/* Print {"cniVersion": V, "code": C, "msg": M, "details": D}\n (cni/shim.py _error_json). */
static int print_error(const struct buf *stdin_data, int code, const char *msg, const char *details)
{
    struct buf o = {0};
    char num[16];
    buf_add(&o, "{\"cniVersion\": ", 15);
    request_version_json(&o, stdin_data->data, stdin_data->len);
    snprintf(num, sizeof num, "%d", code);
    buf_add(&o, ", \"code\": ", 10);
    buf_add(&o, num, strlen(num));
    buf_add(&o, ", \"msg\": ", 9);
    json_str_bytes(&o, msg);
    buf_add(&o, ", \"details\": ", 13);
    json_str_bytes(&o, details);
    buf_add(&o, "}\n", 2);
    if (o.data)
        write_all(1, o.data, o.len);
    free(o.data);
    return 1;
}

/* ------------------------------------------------------------------ helpers */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* `[0-9]+(\.[0-9]+)?` seconds -> ms (same grammar as cni/shim.py); -1 when malformed. */
static long parse_seconds(const char *s)
{
    long ms = 0;
    const char *p = s;
    if (!(*p >= '0' && *p <= '9'))
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (ms > 864000000L)  /* > 10 days: clamp, still valid */
            continue;
        ms = ms * 10 + (*p - '0') * 1000L;
    }
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        long scale = 100;
        for (; *p >= '0' && *p <= '9'; p++) {
            ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    return *p ? -1 : ms;
}

/* decimal uid, no sign, fits uid_t; -1 when malformed */
static long long parse_uid(const char *s)
{
    long long v = 0;
    if (!*s)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > 0xfffffffeLL)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v > 0xfffffffeLL ? -1 : v;
}

static int read_stdin(struct buf *in)
{
    for (;;) {
        if (buf_reserve(in, 65536))
            return -1;
        size_t room = in->cap - in->len;
        if (room > (size_t)FRAME_LIMIT + 1 - in->len)
            room = (size_t)FRAME_LIMIT + 1 - in->len;
        ssize_t n = read(0, in->data + in->len, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            return 0;
        in->len += (size_t)n;
        if (in->len > FRAME_LIMIT)
            return 0; /* caller reports "too large"; the rest is never read */
    }
}

/* CNI_* and PATH as KEY=VALUE\0 pairs, first occurrence of a key wins (Python's posix.environ) */
static int encode_env(struct buf *out)
{
    int first = 1;
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        size_t klen = (size_t)(eq - *e);
        if (!((klen >= 4 && memcmp(*e, "CNI_", 4) == 0) || (klen == 4 && memcmp(*e, "PATH", 4) == 0)))
            continue;
        int dup = 0;
        for (char **f = environ; f < e && !dup; f++)
            dup = strncmp(*f, *e, klen + 1) == 0;
        if (dup)
            continue;
        if ((!first && buf_add(out, "", 1)) || buf_add(out, *e, strlen(*e)))
            return -1;
        first = 0;
    }
    return 0;
}

/* ------------------------------------------------------------------ socket */

enum conn { CONN_OK, CONN_NO_AGENT, CONN_FAILED };

static int set_timeouts(int fd, long deadline)
{
    long left = deadline - now_ms();
    if (left <= 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv))
        return -1;
    return 0;
}

static enum conn connect_agent(const char *path, long deadline, int *fd_out, char *why, size_t whylen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(path);
    if (plen >= sizeof sa.sun_path) {
        snprintf(why, whylen, "%s: AF_UNIX path too long", path);
        return CONN_FAILED;
    }
    memcpy(sa.sun_path, path, plen + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || set_timeouts(fd, deadline)) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CONN_FAILED;
    }
    while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno == EINTR)
            continue;
        int err = errno;
        snprintf(why, whylen, "%s: %s", path, strerror(err == EAGAIN ? ETIMEDOUT : err));
        close(fd);
        return (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR) ? CONN_NO_AGENT : CONN_FAILED;
    }
    *fd_out = fd;
    return CONN_OK;
}

/* The agent must be root or the configured uid, and so must own its socket directory, which
 * nobody else may write to (docs/shim-protocol.md "Peer credentials"). */
static int trusted_peer(int fd, const char *path, long long agent_uid, char *why, size_t whylen)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || len != sizeof cred) {
        snprintf(why, whylen, "%s: cannot read the peer's credentials: %s", path, strerror(errno));
        return 0;
    }
    if (cred.uid != 0 && (agent_uid < 0 || cred.uid != (uid_t)agent_uid)) {
        snprintf(why, whylen, "%s: served by uid %u (pid %d), not root or the configured agent uid",
                 path, (unsigned)cred.uid, (int)cred.pid);
        return 0;
    }
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    struct stat st;
    if (stat(dir, &st)) {
        snprintf(why, whylen, "%s: %s", dir, strerror(errno));
        return 0;
    }
    if (st.st_uid != 0 && (agent_uid < 0 || st.st_uid != (uid_t)agent_uid)) {
        snprintf(why, whylen, "socket directory %s is owned by uid %u, not root or the configured agent uid",
                 dir, (unsigned)st.st_uid);
        return 0;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, whylen, "socket directory %s is group- or world-writable (mode %04o)", dir,
                 (unsigned)(st.st_mode & 07777));
        return 0;
    }
    return 1;
}

static int send_all(int fd, const unsigned char *p, size_t len, long deadline)
{
    while (len) {
        if (set_timeouts(fd, deadline))
            return -1;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                errno = ETIMEDOUT;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 0 ok, -1 errno set, -2 closed mid-message */
static int recv_exact(int fd, unsigned char *p, size_t len, long deadline)
{
    while (len) {
        if (set_timeouts(fd, deadline))
            return -1;
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                errno = ETIMEDOUT;
            return -1;
        }
        if (n == 0)
            return -2;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 0 ok, -1 errno set, -2 closed mid-message, -3 frame over the limit */
static int recv_frame(int fd, struct buf *b, long deadline)
{
    unsigned char hdr[4];
    int rc = recv_exact(fd, hdr, 4, deadline);
    if (rc)
        return rc;
    uint32_t size = be32(hdr);
    if (size > FRAME_LIMIT)
        return -3;
    if (buf_reserve(b, size ? size : 1))
        return -1;
    rc = recv_exact(fd, b->data, size, deadline);
    b->len = size;
    return rc;
}

static void describe(char *why, size_t whylen, const char *path, int rc)
{
    if (rc == -2)
        snprintf(why, whylen, "%s: connection closed mid-message", path);
    else if (rc == -3)
        snprintf(why, whylen, "%s: reply frame exceeds the limit of %u bytes", path, FRAME_LIMIT);
    else
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
}

/* ------------------------------------------------------------------ fallback */

/* Standalone mode: exec the Python shim installed next to this binary, with the stdin already
 * read handed over in a memfd. Returns only if there is none (or it cannot be run). */
static void exec_fallback(const struct buf *in)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash || (size_t)(slash - self) + 1 + sizeof FALLBACK_NAME > sizeof self)
        return;
    strcpy(slash + 1, FALLBACK_NAME);
    struct stat st;
    /* same trust rule as the agent: a root-owned (or our own) file nobody else may write */
    if (stat(self, &st) || !S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
        (st.st_mode & (S_IWGRP | S_IWOTH)) || access(self, X_OK))
        return;
    int mfd = memfd_create("sriov-shim-stdin", MFD_CLOEXEC);
    if (mfd < 0)
        return;
    if ((in->len && write_all(mfd, in->data, in->len)) || lseek(mfd, 0, SEEK_SET) != 0 ||
        dup2(mfd, 0) != 0) {
        close(mfd);
        return;
    }
    char *argv[] = {self, NULL};
    signal(SIGPIPE, SIG_DFL); /* an ignored signal would survive the exec */
    execve(self, argv, environ);
    /* exec failed (e.g. no python3 on this node): stdin is our memfd copy, nothing is lost */
}

/* ------------------------------------------------------------------ main */

static struct buf in, req; /* stdin; request header + env frame: freed in main() */

static int shim_main(void)
{
    const char *command = getenv("CNI_COMMAND");
    if (!(command && strcmp(command, "VERSION") == 0 && isatty(0)) && read_stdin(&in)) {
        char details[256];
        snprintf(details, sizeof details, "%s", strerror(errno));
        in.len = 0;
        return print_error(&in, CODE_IO, "error reading from stdin", details);
    }
    if (in.len > FRAME_LIMIT) {
        char details[128];
        snprintf(details, sizeof details, "stdin is larger than %u bytes", FRAME_LIMIT);
        in.len = 0; /* never parse a truncated document for its cniVersion */
        return print_error(&in, CODE_INVALID_CONFIG, "network configuration too large", details);
    }
    const char *env_path = getenv("SRIOV_CNI_AGENT_SOCKET");
    const char *path = env_path && *env_path ? env_path : DEFAULT_SOCKET;
    long timeout_ms = DEFAULT_TIMEOUT_MS;
    const char *t = getenv("SRIOV_CNI_SHIM_TIMEOUT");
    if (t && *t && ((timeout_ms = parse_seconds(t)) <= 0))
        return print_error(&in, CODE_INVALID_ENV, "invalid SRIOV_CNI_SHIM_TIMEOUT",
                           "expected seconds > 0, e.g. 120 or 0.5");
    long long agent_uid = -1;
    const char *u = getenv("SRIOV_CNI_AGENT_UID");
    if (u && *u && (agent_uid = parse_uid(u)) < 0)
        return print_error(&in, CODE_INVALID_ENV, "invalid SRIOV_CNI_AGENT_UID",
                           "expected a decimal uid");

    if (command && strcmp(command, "VERSION") == 0) {
        struct buf o = {0};
        buf_add(&o, "{\"cniVersion\": ", 15);
        request_version_json(&o, in.data, in.len); /* blank stdin: json fails, 1.1.0 too */
        buf_add(&o, ", \"supportedVersions\": " SUPPORTED_VERSIONS_JSON "}\n",
                strlen(", \"supportedVersions\": " SUPPORTED_VERSIONS_JSON "}\n"));
        int rc = o.data && write_all(1, o.data, o.len) == 0 ? 0 : 1;
        free(o.data);
        return rc;
    }

    /* the request header and env frame, built (and size-checked) before connecting */
    if (buf_u32(&req, 0) || encode_env(&req) || buf_u32(&req, (uint32_t)in.len))
        return print_error(&in, CODE_TRY_AGAIN, "CNI agent connection failed; try again", "out of memory");
    size_t env_len = req.len - 8;
    if (env_len > FRAME_LIMIT) {
        char details[128];
        snprintf(details, sizeof details, "forwarded environment is larger than %u bytes", FRAME_LIMIT);
        return print_error(&in, CODE_INVALID_ENV, "environment too large", details);
    }
    put_be32(req.data, (uint32_t)env_len);

    char why[512];
    long deadline = now_ms() + timeout_ms;
    int fd = -1;
    enum conn c = command && *command ? connect_agent(path, deadline, &fd, why, sizeof why) : CONN_NO_AGENT;
    if (c == CONN_NO_AGENT) {
        exec_fallback(&in);
        char details[600];
        snprintf(details, sizeof details, "no CNI agent at %s and no in-process plugin (native shim)", path);
        return print_error(&in, CODE_TRY_AGAIN, "sriov-k8s CNI agent is not running", details);
    }
    if (c == CONN_FAILED)
        return print_error(&in, CODE_TRY_AGAIN, "CNI agent connection failed; try again", why);
    if (!trusted_peer(fd, path, agent_uid, why, sizeof why)) {
        close(fd);
        return print_error(&in, CODE_UNTRUSTED_AGENT, "refusing an untrusted CNI agent socket", why);
    }

    int rc = send_all(fd, req.data, req.len, deadline);
    if (!rc)
        rc = send_all(fd, in.data, in.len, deadline);
    if (rc) {
        describe(why, sizeof why, path, rc);
        close(fd);
        return print_error(&in, CODE_TRY_AGAIN, "CNI agent connection failed; try again", why);
    }
    shutdown(fd, SHUT_WR);

    unsigned char status_be[4];
    struct buf err = {0}, out = {0};
    rc = recv_exact(fd, status_be, 4, deadline);
    if (!rc)
        rc = recv_frame(fd, &err, deadline);
    if (!rc)
        rc = recv_frame(fd, &out, deadline);
    close(fd);
    if (rc) {
        describe(why, sizeof why, path, rc);
        free(err.data);
        free(out.data);
        return print_error(&in, CODE_TRY_AGAIN, "CNI agent connection failed; try again", why);
    }
    write_all(2, err.data, err.len);
    write_all(1, out.data, out.len);
    free(err.data);
    free(out.data);
    return (int)(be32(status_be) & 0xff);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    int rc = shim_main();
    free(in.data);
    free(req.data);
    return rc;
}
