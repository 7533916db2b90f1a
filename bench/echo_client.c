/* Load generator for bench/echo.py: N connections, each sends a message and
 * waits for the complete echo (verifying it) before sending the next.
 *
 * usage: echo_client PORT CONNS MSGSIZE WARMUP_SECONDS SECONDS
 *
 * The message is made of 64-byte lines (63 letters and "\n"), so the same
 * client drives raw echo servers and line echo servers.  Connects to
 * 127.0.0.1:PORT.  After the warm-up it counts completed round trips for
 * SECONDS and prints "messages bytes seconds" on stdout.  Exits 1 on any
 * error (connection lost, wrong echo).  Single-threaded, epoll, level
 * triggered: it uses far less CPU than the Python servers it drives.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t sent;     /* bytes of the current message written */
    size_t got;      /* bytes of its echo read back */
    unsigned events; /* what epoll watches for now */
};

static char *msg;
static size_t msgsize;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int connect_one(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0)
        die("socket");
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        die("fcntl");
    return fd;
}

static void watch(int ep, struct conn *c, unsigned events, int op)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (op == EPOLL_CTL_MOD && events == c->events)
        return;
    if (epoll_ctl(ep, op, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->events = events;
}

/* Write what is left of the message; switch to waiting for input when done. */
static void do_send(int ep, struct conn *c)
{
    while (c->sent < msgsize) {
        ssize_t n = send(c->fd, msg + c->sent, msgsize - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            die("send");
        }
        c->sent += n;
    }
    watch(ep, c, c->sent < msgsize ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
}

/* Read echoed bytes; returns 1 when the whole message came back. */
static int do_recv(struct conn *c, char *buf, size_t bufsize)
{
    ssize_t n = recv(c->fd, buf, bufsize, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        die("recv");
    }
    if (n == 0) {
        fprintf(stderr, "echo_client: server closed the connection\n");
        exit(1);
    }
    if ((size_t)n > msgsize - c->got || memcmp(buf, msg + c->got, n) != 0) {
        fprintf(stderr, "echo_client: wrong echo at offset %zu\n", c->got);
        exit(1);
    }
    c->got += n;
    return c->got == msgsize;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s PORT CONNS MSGSIZE WARMUP SECONDS [crlf]\n", argv[0]);
        return 2;
    }
    int crlf = argc == 7 && strcmp(argv[6], "crlf") == 0;
    int port = atoi(argv[1]), nconns = atoi(argv[2]);
    double warmup = atof(argv[4]), seconds = atof(argv[5]);
    msgsize = strtoul(argv[3], NULL, 10);
    if (nconns <= 0 || msgsize == 0)
        return 2;
    msg = malloc(msgsize);
    for (size_t i = 0; i < msgsize; i++)
        msg[i] = i % 64 == 63 ? '\n' : crlf && i % 64 == 62 ? '\r' : 'a' + (i / 64 + i) % 26;
    size_t bufsize = msgsize < 262144 ? msgsize : 262144;
    char *buf = malloc(bufsize);

    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    struct conn *conns = calloc(nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = connect_one(port);
        watch(ep, &conns[i], EPOLLIN, EPOLL_CTL_ADD);
        do_send(ep, &conns[i]);
    }

    double start = now() + warmup, end = start + seconds, t;
    unsigned long long messages = 0;
    int counting = 0;
    struct epoll_event events[64];
    while ((t = now()) < end) {
        if (!counting && t >= start) {
            counting = 1;
            messages = 0;
        }
        int n = epoll_wait(ep, events, 64, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & EPOLLOUT)
                do_send(ep, c);
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (do_recv(c, buf, bufsize)) {
                    messages++;
                    c->sent = c->got = 0;
                    do_send(ep, c);
                }
            }
        }
    }
    printf("%llu %llu %.6f\n", messages, messages * msgsize, seconds);
    return 0;
}
