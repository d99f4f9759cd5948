/*
 * The UDP socket features dhcp-db needs and Node's dgram lacks: SO_BINDTODEVICE, IP_PKTINFO on receive
 * (which interface, which destination) and on send (outgoing interface and source address), and
 * SIOCSARP so a reply can be unicast to a client that has no address yet (dnsmasq does the same).
 *
 * JS API (wrapped by ../socket.ts, which validates arguments first; the checks here are a backstop):
 *   open(port, address, ifname|null, onPacket) -> { handle, port }
 *       onPacket(buf, ifindex, source, sourcePort, destination)
 *   send(handle, buf, address, port, ifindex (0: none), from|null, mac|null)
 *   close(handle)                      idempotent
 *   stats(handle) -> { received, sent, sendErrors, callbackErrors }
 *   indexToName(ifindex) -> string|null
 * Errors carry .code ('EPERM'), .syscall and .ifname; the message reads "SO_BINDTODEVICE veth1: ...".
 *
 * Lifetime: the struct is shared by the JS handle object (until its finalizer) and the uv_poll_t (until
 * its close callback); whichever lets go last frees it. While open, the handle object is held by a
 * strong reference, so an open socket is never collected (as with dgram).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* struct in_pktinfo */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#define RECV_BUF_SIZE 65536 /* larger than any UDP payload, so nothing is ever truncated */
#define DRAIN_MAX 64        /* datagrams read per wake-up before yielding to the event loop */
#define MAX_UDP_PAYLOAD 65507

typedef struct dsock {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int refs;       /* the handle object + the uv handle while it exists */
  bool open;      /* fully set up and not yet closed */
  bool poll_live; /* uv_poll_init succeeded and uv_close not yet called */
  bool closing;   /* uv_close called, its callback not yet run */
  napi_async_cleanup_hook_handle hook; /* held until the uv handle is closed */
  napi_ref callback;
  napi_ref self;
  napi_async_context async;
  char ifname[IF_NAMESIZE]; /* "" when not bound to a device */
  int port;
  double received, sent, send_errors, callback_errors;
  unsigned char *buf;
} dsock;

static const napi_type_tag DSOCK_TAG = {0x63726f7762617264ULL, 0x6468637073636b31ULL};

/* ---- errors ---------------------------------------------------------------------------------- */

/* Throws Error("<syscall> <ifname>: <strerror>") with .code, .syscall, .ifname. Returns NULL. */
static napi_value throw_sys(napi_env env, const char *syscall, const char *ifname, int err) {
  char code[32], msg[256];
  uv_err_name_r(-err, code, sizeof code);
  snprintf(msg, sizeof msg, "%s %s: %s", syscall, ifname && *ifname ? ifname : "(any interface)",
           strerror(err));
  napi_value jcode, jmsg, jerr, jsys, jif;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &jerr) != napi_ok)
    return NULL;
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &jsys);
  napi_set_named_property(env, jerr, "syscall", jsys);
  if (ifname && *ifname)
    napi_create_string_utf8(env, ifname, NAPI_AUTO_LENGTH, &jif);
  else
    napi_get_null(env, &jif);
  napi_set_named_property(env, jerr, "ifname", jif);
  napi_throw(env, jerr);
  return NULL;
}

static napi_value throw_inval(napi_env env, const char *what) {
  napi_throw_type_error(env, "EINVAL", what);
  return NULL;
}

/* ---- argument helpers ------------------------------------------------------------------------ */

/* Copies a JS string of at most cap-1 bytes with no embedded NUL; false if it is anything else. */
static bool get_str(napi_env env, napi_value v, char *out, size_t cap) {
  napi_valuetype t;
  size_t len;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return false;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len >= cap) return false;
  if (napi_get_value_string_utf8(env, v, out, cap, &len) != napi_ok) return false;
  return strlen(out) == len;
}

static bool get_ipv4(napi_env env, napi_value v, struct in_addr *out) {
  char s[INET_ADDRSTRLEN];
  return get_str(env, v, s, sizeof s) && inet_pton(AF_INET, s, out) == 1;
}

static bool get_int(napi_env env, napi_value v, double lo, double hi, int *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= lo && d <= hi) || d != (double)(int)d)
    return false;
  *out = (int)d;
  return true;
}

static bool is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

static bool get_bytes(napi_env env, napi_value v, unsigned char **data, size_t *len) {
  bool is;
  napi_typedarray_type type;
  void *p;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return false;
  *data = p;
  return true;
}

static dsock *get_sock(napi_env env, napi_value v) {
  bool ok = false;
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_object) return NULL;
  if (napi_check_object_type_tag(env, v, &DSOCK_TAG, &ok) != napi_ok || !ok) return NULL;
  if (napi_unwrap(env, v, &p) != napi_ok) return NULL;
  return p;
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static void release(dsock *s) {
  if (--s->refs > 0) return;
  free(s->buf);
  free(s);
}

/* Nothing of ours is left in the loop: the environment, and with it this library, may go away now. */
static void on_poll_closed(uv_handle_t *h) {
  dsock *s = h->data;
  s->closing = false;
  if (s->hook) napi_remove_async_cleanup_hook(s->hook);
  s->hook = NULL;
  release(s);
}

/* Undoes whatever open() got as far as; safe on a half-built socket and when called twice. */
static void shut(dsock *s) {
  s->open = false;
  if (s->poll_live) {
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_poll_closed); /* removes the fd from epoll before we close it */
    s->poll_live = false;
    s->closing = true;
  }
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  if (s->callback) napi_delete_reference(s->env, s->callback);
  if (s->self) napi_delete_reference(s->env, s->self);
  if (s->async) napi_async_destroy(s->env, s->async);
  s->callback = NULL;
  s->self = NULL;
  s->async = NULL;
}

/*
 * The environment is going away (worker end, process exit) with the socket open or its close pending.
 * Node waits for the hook's removal before unloading this library, so a close callback still queued in
 * the loop never runs in unmapped code: on_poll_closed removes it.
 */
static void cleanup_hook(napi_async_cleanup_hook_handle h, void *arg) {
  (void)h;
  dsock *s = arg;
  shut(s);
  if (!s->closing && s->hook) {
    napi_remove_async_cleanup_hook(s->hook);
    s->hook = NULL;
  }
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  dsock *s = data;
  /* Open here only if the environment is torn down without the hook (defensive): refs are going anyway. */
  s->callback = NULL;
  s->self = NULL;
  s->async = NULL;
  if (s->open || s->poll_live || s->fd >= 0) shut(s);
  release(s);
}

/* ---- receive --------------------------------------------------------------------------------- */

static void deliver(dsock *s, size_t n, const struct sockaddr_in *src, int ifindex, struct in_addr dst) {
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  char srcs[INET_ADDRSTRLEN] = "", dsts[INET_ADDRSTRLEN] = "";
  inet_ntop(AF_INET, &src->sin_addr, srcs, sizeof srcs);
  if (dst.s_addr != 0 || ifindex != 0) inet_ntop(AF_INET, &dst, dsts, sizeof dsts);
  napi_value argv[5], cb, recv;
  if (napi_create_buffer_copy(env, n, s->buf, NULL, &argv[0]) == napi_ok &&
      napi_create_int32(env, ifindex, &argv[1]) == napi_ok &&
      napi_create_string_utf8(env, srcs, NAPI_AUTO_LENGTH, &argv[2]) == napi_ok &&
      napi_create_int32(env, ntohs(src->sin_port), &argv[3]) == napi_ok &&
      napi_create_string_utf8(env, dsts, NAPI_AUTO_LENGTH, &argv[4]) == napi_ok &&
      napi_get_reference_value(env, s->callback, &cb) == napi_ok && cb != NULL &&
      napi_get_global(env, &recv) == napi_ok) { /* make_callback wants an object */
    if (napi_make_callback(env, s->async, recv, cb, 5, argv, NULL) != napi_ok) s->callback_errors++;
  } else {
    s->callback_errors++;
  }
  /* A throwing callback must not take the process down: clear it and count it. */
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  dsock *s = h->data;
  if (status < 0) return;
  for (int i = 0; i < DRAIN_MAX && s->open; i++) {
    struct sockaddr_in src;
    union {
      char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
      struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = s->buf, .iov_len = RECV_BUF_SIZE};
    struct msghdr m = {.msg_name = &src,
                       .msg_namelen = sizeof src,
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.buf,
                       .msg_controllen = sizeof ctl.buf};
    memset(&src, 0, sizeof src);
    ssize_t n = recvmsg(s->fd, &m, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      break; /* EAGAIN: drained; anything else: the next wake-up will tell */
    }
    int ifindex = 0;
    struct in_addr dst = {0};
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
          c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
        struct in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        ifindex = pi.ipi_ifindex;
        dst = pi.ipi_addr; /* the header's destination (255.255.255.255 for a broadcast) */
      }
    }
    s->received++;
    deliver(s, (size_t)n, &src, ifindex, dst);
  }
}

/* ---- JS functions ---------------------------------------------------------------------------- */

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4)
    return throw_inval(env, "open(port, address, ifname, onPacket)");
  int port;
  struct in_addr addr;
  char ifname[IF_NAMESIZE] = "";
  napi_valuetype t;
  if (!get_int(env, argv[0], 0, 65535, &port)) return throw_inval(env, "port must be an integer 0-65535");
  if (!get_ipv4(env, argv[1], &addr)) return throw_inval(env, "address must be an IPv4 address");
  if (!is_nullish(env, argv[2]) && (!get_str(env, argv[2], ifname, sizeof ifname) || !*ifname))
    return throw_inval(env, "ifname must be an interface name of 1-15 bytes");
  if (napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function)
    return throw_inval(env, "onPacket must be a function");

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_sys(env, "socket", ifname, errno);
  const int one = 1;
  const char *step = NULL;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
    step = "SO_REUSEADDR";
  else if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0)
    step = "SO_BROADCAST";
  else if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0)
    step = "IP_PKTINFO";
  else if (*ifname && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname) + 1) < 0)
    step = "SO_BINDTODEVICE";
  if (!step) {
    /* Room for a burst of requests while JavaScript is busy (about 3,000 packets); best effort: the
     * FORCE variant needs CAP_NET_ADMIN, the plain one is capped by net.core.rmem_max. */
    const int rcvbuf = 1 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = addr};
  socklen_t salen = sizeof sa;
  if (!step && bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) step = "bind";
  if (!step && getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) step = "getsockname";
  if (step) {
    int err = errno;
    close(fd);
    return throw_sys(env, step, ifname, err);
  }

  dsock *s = calloc(1, sizeof *s);
  unsigned char *buf = malloc(RECV_BUF_SIZE);
  napi_value handle;
  if (!s || !buf || napi_create_object(env, &handle) != napi_ok) {
    free(s);
    free(buf);
    close(fd);
    return throw_sys(env, "malloc", ifname, ENOMEM);
  }
  s->env = env;
  s->fd = fd;
  s->buf = buf;
  s->port = ntohs(sa.sin_port);
  memcpy(s->ifname, ifname, sizeof ifname);
  s->refs = 1;
  if (napi_wrap(env, handle, s, finalize, NULL, NULL) != napi_ok) {
    free(buf);
    free(s);
    close(fd);
    return throw_inval(env, "napi_wrap failed");
  }
  /* From here on the handle object owns s: failures only shut it; the finalizer frees it. */
  if (napi_type_tag_object(env, handle, &DSOCK_TAG) != napi_ok) {
    shut(s);
    return throw_inval(env, "napi_type_tag_object failed");
  }

  uv_loop_t *loop = NULL;
  int r = napi_get_uv_event_loop(env, &loop) == napi_ok ? uv_poll_init(loop, &s->poll, fd) : UV_EINVAL;
  if (r == 0) {
    s->poll.data = s;
    s->poll_live = true;
    s->refs++;
    r = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  }
  if (r != 0) {
    shut(s);
    return throw_sys(env, "uv_poll_start", ifname, -r);
  }
  napi_value name, result, jport;
  bool ok = napi_create_reference(env, argv[3], 1, &s->callback) == napi_ok &&
            napi_create_reference(env, handle, 1, &s->self) == napi_ok &&
            napi_create_string_utf8(env, "DhcpSocket", NAPI_AUTO_LENGTH, &name) == napi_ok &&
            napi_async_init(env, handle, name, &s->async) == napi_ok;
  if (ok) ok = napi_add_async_cleanup_hook(env, cleanup_hook, s, &s->hook) == napi_ok;
  if (ok)
    ok = napi_create_object(env, &result) == napi_ok && napi_create_int32(env, s->port, &jport) == napi_ok &&
         napi_set_named_property(env, result, "handle", handle) == napi_ok &&
         napi_set_named_property(env, result, "port", jport) == napi_ok;
  if (!ok) {
    shut(s);
    return throw_sys(env, "napi", ifname, ENOMEM);
  }
  s->open = true;
  return result;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7)
    return throw_inval(env, "send(handle, buf, address, port, ifindex, from, mac)");
  dsock *s = get_sock(env, argv[0]);
  if (!s) return throw_inval(env, "not a DhcpSocket handle");
  unsigned char *data, *mac = NULL;
  size_t len, maclen = 0;
  struct in_addr dst, from = {0};
  int port, ifindex;
  bool has_from = !is_nullish(env, argv[5]);
  if (!get_bytes(env, argv[1], &data, &len) || len > MAX_UDP_PAYLOAD)
    return throw_inval(env, "buf must be a Uint8Array of at most 65507 bytes");
  if (!get_ipv4(env, argv[2], &dst)) return throw_inval(env, "address must be an IPv4 address");
  if (!get_int(env, argv[3], 1, 65535, &port)) return throw_inval(env, "port must be an integer 1-65535");
  if (!get_int(env, argv[4], 0, INT32_MAX, &ifindex)) return throw_inval(env, "ifindex must be an integer");
  if (has_from && !get_ipv4(env, argv[5], &from)) return throw_inval(env, "from must be an IPv4 address");
  if (!is_nullish(env, argv[6]) && (!get_bytes(env, argv[6], &mac, &maclen) || maclen != 6 || !ifindex))
    return throw_inval(env, "mac must be a 6-byte Uint8Array, and needs ifindex");
  if (!s->open) return throw_sys(env, "sendmsg", s->ifname, EBADF);

  char outif[IF_NAMESIZE] = "";
  if (ifindex && !if_indextoname((unsigned)ifindex, outif)) {
    s->send_errors++;
    return throw_sys(env, "if_indextoname", s->ifname, errno);
  }
  const char *ifn = *outif ? outif : s->ifname;
  if (mac) {
    /* The client has no address yet, so nobody would answer ARP for it: tell the kernel its MAC. */
    struct arpreq ar;
    memset(&ar, 0, sizeof ar);
    struct sockaddr_in pa = {.sin_family = AF_INET, .sin_addr = dst};
    memcpy(&ar.arp_pa, &pa, sizeof pa);
    ar.arp_ha.sa_family = ARPHRD_ETHER;
    memcpy(ar.arp_ha.sa_data, mac, 6);
    ar.arp_flags = ATF_COM;
    memcpy(ar.arp_dev, outif, sizeof outif < sizeof ar.arp_dev ? sizeof outif : sizeof ar.arp_dev);
    ar.arp_dev[sizeof ar.arp_dev - 1] = '\0';
    if (ioctl(s->fd, SIOCSARP, &ar) < 0) {
      s->send_errors++;
      return throw_sys(env, "SIOCSARP", ifn, errno);
    }
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = dst};
  struct iovec iov = {.iov_base = data, .iov_len = len};
  union {
    char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr m = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov, .msg_iovlen = 1};
  if (ifindex || has_from) {
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo pi = {.ipi_ifindex = ifindex, .ipi_spec_dst = from};
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
  }
  ssize_t n;
  do
    n = sendmsg(s->fd, &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0 || (size_t)n != len) {
    s->send_errors++;
    return throw_sys(env, "sendmsg", ifn, n < 0 ? errno : EMSGSIZE);
  }
  s->sent++;
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1)
    return throw_inval(env, "close(handle)");
  dsock *s = get_sock(env, argv[0]);
  if (!s) return throw_inval(env, "not a DhcpSocket handle");
  shut(s);
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1)
    return throw_inval(env, "stats(handle)");
  dsock *s = get_sock(env, argv[0]);
  if (!s) return throw_inval(env, "not a DhcpSocket handle");
  napi_value o, v;
  if (napi_create_object(env, &o) != napi_ok) return NULL;
  const struct {
    const char *name;
    double value;
  } fields[] = {{"received", s->received},
                {"sent", s->sent},
                {"sendErrors", s->send_errors},
                {"callbackErrors", s->callback_errors}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (napi_create_double(env, fields[i].value, &v) != napi_ok ||
        napi_set_named_property(env, o, fields[i].name, v) != napi_ok)
      return NULL;
  }
  return o;
}

static napi_value js_index_to_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  int ifindex;
  char name[IF_NAMESIZE];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      !get_int(env, argv[0], 1, INT32_MAX, &ifindex))
    return throw_inval(env, "indexToName(ifindex)");
  if (!if_indextoname((unsigned)ifindex, name)) {
    napi_get_null(env, &r);
    return r;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &r);
  return r;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  const napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"indexToName", NULL, js_index_to_name, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
