// A minimal inotify reader for sersync-ts (src/watch/inotify-instance.ts): one inotify descriptor, watches added
// and removed by watch descriptor, and a reader thread that hands the raw event bytes to JavaScript in chunks of up
// to 64 KiB through a thread-safe function. Unlike fs.watch it costs no JavaScript object per directory, passes
// IN_ISDIR and shows IN_Q_OVERFLOW (which libuv drops). Only N-API: the same binary loads in any Node >= 12.
#define NAPI_VERSION 8
#include <node_api.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

typedef struct {
  int fd;
  int wake[2];
  pthread_t thread;
  napi_threadsafe_function tsfn;
  int closed;
  volatile int closing;
  // finish() was called: read what the kernel holds, hand it over, then the end marker (err -1), and read on (the
  // descriptor serves every watcher of the daemon; one of them stopping must not stop the others' events).
  volatile int finishing;
} Reader;

typedef struct {
  char* data;
  size_t len;
  int err;
} Chunk;

static void post(Reader* r, char* data, size_t len, int err) {
  Chunk* c = malloc(sizeof *c);
  if (c == NULL) return;
  c->data = data;
  c->len = len;
  c->err = err;
  if (napi_call_threadsafe_function(r->tsfn, c, napi_tsfn_blocking) != napi_ok) {
    free(c->data);
    free(c);
  }
}

// Reads until the descriptor is empty, posting each chunk, then posts the end marker: every event queued before
// finish() was called has then reached JavaScript, in order. `finishing` is cleared before the marker is posted, so
// a finish() that JavaScript calls on seeing the marker is never taken for this one.
static void drain_and_end(Reader* r, char* buf, size_t size) {
  for (;;) {
    ssize_t got = read(r->fd, buf, size);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    char* copy = malloc((size_t)got);
    if (copy == NULL) break;
    memcpy(copy, buf, (size_t)got);
    post(r, copy, (size_t)got, 0);
  }
  r->finishing = 0;
  post(r, NULL, 0, -1);
}

static void* read_loop(void* arg) {
  Reader* r = arg;
  static const size_t size = 65536;
  char* buf = malloc(size);
  if (buf == NULL) return NULL;
  struct pollfd fds[2] = {{r->fd, POLLIN, 0}, {r->wake[0], POLLIN, 0}};
  // Waking up is what this thread spends its time on (perf here: mostly context switches, then the reads), and each
  // chunk it posts wakes the JavaScript thread too. So events are left to gather before a read: 2 ms after the first
  // change of a quiet spell, then, while they keep coming, 20 ms at a time with no poll in between (a third of the
  // CPU of a poll and 2 ms before every read in a burst). A single change still waits 2 ms, a burst's events 20 ms,
  // nothing next to quietMs; 20 ms of events fit the kernel's default queue (16384) up to 800k events a second.
  int flowing = 0;
  for (;;) {
    if (r->closing) break;
    if (!flowing) {
      int n = poll(fds, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        post(r, NULL, 0, errno);
        break;
      }
      if (fds[1].revents) {
        char wake[64];
        ssize_t ignored = read(r->wake[0], wake, sizeof wake);
        (void)ignored;
        if (r->closing) break;
        if (r->finishing) drain_and_end(r, buf, size);
        continue;
      }
      if (!(fds[0].revents & POLLIN)) continue;
    }
    usleep(flowing ? 20000 : 2000);
    flowing = 0;
    for (;;) {
      ssize_t got = read(r->fd, buf, size);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && errno == EAGAIN) break;
      if (got <= 0) {
        post(r, NULL, 0, got < 0 ? errno : EIO);
        free(buf);
        return NULL;
      }
      if (r->closing) break;
      char* copy = malloc((size_t)got);
      if (copy == NULL) break;
      memcpy(copy, buf, (size_t)got);
      post(r, copy, (size_t)got, 0);
      flowing = 1;
    }
    if (r->finishing && !r->closing) drain_and_end(r, buf, size);
  }
  free(buf);
  return NULL;
}

static void call_js(napi_env env, napi_value cb, void* context, void* data) {
  (void)context;
  Chunk* c = data;
  if (env != NULL && cb != NULL) {
    napi_value argv[2], undef;
    napi_get_undefined(env, &undef);
    if (c->err == 0) {
      napi_create_buffer_copy(env, c->len, c->data, NULL, &argv[0]);
      napi_get_null(env, &argv[1]);
    } else {
      napi_get_null(env, &argv[0]);
      napi_create_int32(env, c->err, &argv[1]);
    }
    napi_call_function(env, undef, cb, 2, argv, NULL);
  }
  free(c->data);
  free(c);
}

static napi_value throw_errno(napi_env env, int err, const char* what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, text, error;
  napi_create_int32(env, err, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, NULL, text, &error);
  napi_set_named_property(env, error, "errno", code);
  napi_throw(env, error);
  return NULL;
}

static Reader* unwrap(napi_env env, napi_value v) {
  Reader* r = NULL;
  napi_get_value_external(env, v, (void**)&r);
  return r;
}

static void stop(Reader* r) {
  if (r->closed) return;
  r->closed = 1;
  r->closing = 1;
  // Abort first: the reader may be blocked handing a chunk to a full queue that this (JavaScript) thread will not
  // drain any more; abort makes that call return, then the wake byte ends its poll.
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
  ssize_t ignored = write(r->wake[1], "x", 1);
  (void)ignored;
  pthread_join(r->thread, NULL);
  close(r->fd);
  close(r->wake[0]);
  close(r->wake[1]);
}

static void finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  Reader* r = data;
  stop(r);
  free(r);
}

// open(callback(chunk: Buffer | null, errno: number | null)) -> handle
static napi_value open_reader(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name, handle;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Reader* r = calloc(1, sizeof *r);
  if (r == NULL) return throw_errno(env, ENOMEM, "inotify");
  r->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (r->fd < 0) {
    int err = errno;
    free(r);
    return throw_errno(env, err, "inotify_init1");
  }
  if (pipe(r->wake) != 0) {
    int err = errno;
    close(r->fd);
    free(r);
    return throw_errno(env, err, "pipe");
  }
  napi_create_string_utf8(env, "sersync-inotify", NAPI_AUTO_LENGTH, &name);
  // At most 64 chunks wait for JavaScript; then the reader blocks and the kernel queue fills, so a daemon that falls
  // behind gets IN_Q_OVERFLOW (and a full sync) instead of unbounded memory.
  napi_create_threadsafe_function(env, argv[0], NULL, name, 64, 1, NULL, NULL, NULL, call_js, &r->tsfn);
  if (pthread_create(&r->thread, NULL, read_loop, r) != 0) {
    close(r->fd);
    close(r->wake[0]);
    close(r->wake[1]);
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
    free(r);
    return throw_errno(env, EAGAIN, "pthread_create");
  }
  napi_create_external(env, r, finalize, NULL, &handle);
  return handle;
}

// addWatch(handle, path: Buffer, mask: number) -> wd
static napi_value add_watch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Reader* r = unwrap(env, argv[0]);
  if (r == NULL || r->closed) return throw_errno(env, EBADF, "inotify_add_watch");
  char* data;
  size_t len;
  napi_get_buffer_info(env, argv[1], (void**)&data, &len);
  uint32_t mask;
  napi_get_value_uint32(env, argv[2], &mask);
  char* path = malloc(len + 1);
  if (path == NULL) return throw_errno(env, ENOMEM, "inotify_add_watch");
  memcpy(path, data, len);
  path[len] = 0;
  int wd = inotify_add_watch(r->fd, path, mask);
  int err = errno;
  free(path);
  if (wd < 0) return throw_errno(env, err, "inotify_add_watch");
  napi_create_int32(env, wd, &out);
  return out;
}

// rmWatch(handle, wd): errors (a watch the kernel already dropped) are ignored.
static napi_value rm_watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Reader* r = unwrap(env, argv[0]);
  int32_t wd;
  napi_get_value_int32(env, argv[1], &wd);
  if (r != NULL && !r->closed) inotify_rm_watch(r->fd, wd);
  return NULL;
}

// finish(handle): the reader hands over every event queued so far, then calls back with errno -1, and reads on. The
// JavaScript thread must keep running meanwhile (the reader may wait for it to take chunks). Call it again only
// after the marker came.
static napi_value finish_reader(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Reader* r = unwrap(env, argv[0]);
  if (r != NULL && !r->closed && !r->finishing) {
    r->finishing = 1;
    ssize_t ignored = write(r->wake[1], "x", 1);
    (void)ignored;
  }
  return NULL;
}

// close(handle): stops the reader thread and closes the descriptor.
static napi_value close_reader(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Reader* r = unwrap(env, argv[0]);
  if (r != NULL) stop(r);
  return NULL;
}

// listDirs(path: Buffer) -> Buffer: the names of the subdirectories of `path`, each followed by a NUL byte, from
// readdir's d_type (lstat where the file system does not say). Files never reach JavaScript, which is most of the
// cost of watching a large tree: a 1M-file walk otherwise makes a Dirent, a Buffer and a string for every file.
static napi_value list_dirs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char* data;
  size_t len;
  napi_get_buffer_info(env, argv[0], (void**)&data, &len);
  char* path = malloc(len + 1);
  if (path == NULL) return throw_errno(env, ENOMEM, "opendir");
  memcpy(path, data, len);
  path[len] = 0;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  free(path);
  if (fd < 0) return throw_errno(env, errno, "opendir");
  DIR* dir = fdopendir(fd);
  if (dir == NULL) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "opendir");
  }
  size_t cap = 4096, used = 0;
  char* names = malloc(cap);
  struct dirent* e;
  int err = 0;
  while (names != NULL) {
    errno = 0;
    e = readdir(dir);
    if (e == NULL) {
      err = errno;
      break;
    }
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) continue;
    int isdir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      isdir = fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (!isdir) continue;
    size_t n = strlen(e->d_name) + 1;
    if (used + n > cap) {
      while (used + n > cap) cap *= 2;
      char* grown = realloc(names, cap);
      if (grown == NULL) {
        free(names);
        names = NULL;
        break;
      }
      names = grown;
    }
    memcpy(names + used, e->d_name, n);
    used += n;
  }
  closedir(dir);
  if (names == NULL) return throw_errno(env, ENOMEM, "readdir");
  if (err != 0) {
    free(names);
    return throw_errno(env, err, "readdir");
  }
  napi_create_buffer_copy(env, used, names, NULL, &out);
  free(names);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, open_reader, NULL, NULL, NULL, napi_default, NULL},
      {"addWatch", NULL, add_watch, NULL, NULL, NULL, napi_default, NULL},
      {"rmWatch", NULL, rm_watch, NULL, NULL, NULL, napi_default, NULL},
      {"finish", NULL, finish_reader, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_reader, NULL, NULL, NULL, napi_default, NULL},
      {"listDirs", NULL, list_dirs, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
