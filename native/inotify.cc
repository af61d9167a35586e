// Minimal inotify binding for sftppush, written against Node-API only so one
// build loads on Node 20 and Node 24.
//
// Design:
//  - The inotify fd is non-blocking and watched with a uv_poll_t on the
//    environment's own loop: reading never blocks the event loop and never
//    occupies a threadpool slot.
//  - Each readable wakeup drains the fd and hands JS ONE array (a batch), so a
//    burst of thousands of events costs one JS call, not thousands.
//  - IN_Q_OVERFLOW arrives with wd == -1; it is passed through as an ordinary
//    event. Nothing here maps wd -> callback, so there is nothing to look up
//    and nothing to crash on.
//  - The uv handle and fd live in a heap struct (Native) separate from the JS
//    wrapper, because uv_close finishes asynchronously and environment
//    teardown may reach the handle before or after the wrapper is finalized.

#include <napi.h>
#include <uv.h>

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"

namespace {

// The TypeScript side hard-codes these values (they are kernel ABI); fail the
// build rather than ship a wrapper whose masks disagree with the headers.
static_assert(IN_ACCESS == 0x1, "IN_ACCESS");
static_assert(IN_MODIFY == 0x2, "IN_MODIFY");
static_assert(IN_ATTRIB == 0x4, "IN_ATTRIB");
static_assert(IN_CLOSE_WRITE == 0x8, "IN_CLOSE_WRITE");
static_assert(IN_CLOSE_NOWRITE == 0x10, "IN_CLOSE_NOWRITE");
static_assert(IN_OPEN == 0x20, "IN_OPEN");
static_assert(IN_MOVED_FROM == 0x40, "IN_MOVED_FROM");
static_assert(IN_MOVED_TO == 0x80, "IN_MOVED_TO");
static_assert(IN_CREATE == 0x100, "IN_CREATE");
static_assert(IN_DELETE == 0x200, "IN_DELETE");
static_assert(IN_DELETE_SELF == 0x400, "IN_DELETE_SELF");
static_assert(IN_MOVE_SELF == 0x800, "IN_MOVE_SELF");
static_assert(IN_UNMOUNT == 0x2000, "IN_UNMOUNT");
static_assert(IN_Q_OVERFLOW == 0x4000, "IN_Q_OVERFLOW");
static_assert(IN_IGNORED == 0x8000, "IN_IGNORED");
static_assert(IN_ONLYDIR == 0x01000000, "IN_ONLYDIR");
static_assert(IN_DONT_FOLLOW == 0x02000000, "IN_DONT_FOLLOW");
static_assert(IN_EXCL_UNLINK == 0x04000000, "IN_EXCL_UNLINK");
static_assert(IN_MASK_ADD == 0x20000000, "IN_MASK_ADD");
static_assert(IN_ISDIR == 0x40000000, "IN_ISDIR");
static_assert(IN_ONESHOT == 0x80000000, "IN_ONESHOT");

// Big enough for hundreds of events per read(); every event (max name 255
// bytes) fits, so read() never fails with EINVAL for a too-small buffer.
constexpr size_t kReadBufferSize = 64 * 1024;
// uv_poll is level-triggered, so stopping early loses nothing: the rest is
// read on the next loop iteration. The cap keeps a writer that produces
// events as fast as we consume them from starving timers and I/O.
constexpr int kMaxReadsPerWakeup = 256;

struct RawEvent {
  int32_t wd;
  uint32_t mask;
  uint32_t cookie;
  std::string name;  // raw bytes, trailing NUL padding stripped
};

class InotifyWrap;

struct Native {
  uv_poll_t poll;
  int fd = -1;
  bool closing = false;
  InotifyWrap* owner = nullptr;  // null once closed or finalized
  napi_async_cleanup_hook_handle teardown_hook = nullptr;
  alignas(struct inotify_event) char buf[kReadBufferSize];
};

void OnPollClosed(uv_handle_t* handle) {
  auto* n = static_cast<Native*>(handle->data);
  // Removing an async cleanup hook is also how Node learns that teardown
  // work we started for it has finished.
  if (n->teardown_hook != nullptr) napi_remove_async_cleanup_hook(n->teardown_hook);
  delete n;
}

void ShutdownNative(Native* n);

std::string ErrnoName(int err) { return uv_err_name(-err); }

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& path) {
  std::string message = std::string(syscall);
  if (!path.empty()) message += " " + path;
  message += ": " + ErrnoName(err) + " (" + std::strerror(err) + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  // Positive, as in os.constants.errno, so callers can compare directly.
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) error.Set("path", Napi::String::New(env, path));
  return error;
}

Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

void ParseEvents(const char* buf, size_t len, std::vector<RawEvent>& out) {
  size_t off = 0;
  while (off + sizeof(struct inotify_event) <= len) {
    const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
    size_t name_len = ev->len > 0 ? strnlen(ev->name, ev->len) : 0;
    out.push_back(RawEvent{ev->wd, ev->mask, ev->cookie, std::string(ev->name, name_len)});
    off += sizeof(struct inotify_event) + ev->len;
  }
}

// Returns 0 when the queue is empty (or the per-wakeup cap is hit), else errno.
int DrainEvents(Native* n, std::vector<RawEvent>& out) {
  for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
    ssize_t len = ::read(n->fd, n->buf, sizeof(n->buf));
    if (len > 0) {
      ParseEvents(n->buf, static_cast<size_t>(len), out);
      continue;
    }
    if (len == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return errno;
  }
  return 0;
}

class InotifyWrap : public Napi::ObjectWrap<InotifyWrap> {
 public:
  static Napi::Function DefineClass(Napi::Env env) {
    return ObjectWrap<InotifyWrap>::DefineClass(
        env, "Inotify",
        {
            InstanceMethod<&InotifyWrap::AddWatch>("addWatch"),
            InstanceMethod<&InotifyWrap::RmWatch>("rmWatch"),
            InstanceMethod<&InotifyWrap::Close>("close"),
            InstanceMethod<&InotifyWrap::JsRef>("ref"),
            InstanceMethod<&InotifyWrap::JsUnref>("unref"),
        });
  }

  explicit InotifyWrap(const Napi::CallbackInfo& info) : ObjectWrap<InotifyWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) {
      throw Napi::TypeError::New(env, "Inotify: onEvents must be a function");
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      throw CodedError(env, "ERR_INOTIFY_NO_LOOP", "Inotify: no libuv loop for this environment");
    }
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) throw ErrnoError(env, errno, "inotify_init1", "");

    auto* n = new Native;
    n->fd = fd;
    n->poll.data = n;
    int rc = uv_poll_init(loop, &n->poll, fd);
    if (rc != 0) {
      ::close(fd);
      delete n;
      throw CodedError(env, uv_err_name(rc), std::string("uv_poll_init: ") + uv_strerror(rc));
    }
    rc = uv_poll_start(&n->poll, UV_READABLE, OnPollReadable);
    if (rc != 0) {
      ShutdownNative(n);
      throw CodedError(env, uv_err_name(rc), std::string("uv_poll_start: ") + uv_strerror(rc));
    }
    napi_add_async_cleanup_hook(env, OnEnvTeardown, n, &n->teardown_hook);
    napi_async_init(env, Value(), Napi::String::New(env, "sftppush:inotify"), &async_context_);
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    n->owner = this;
    native_ = n;
    // An open watcher must not vanish just because JS dropped its handle:
    // the kernel keeps queueing events for it.
    Ref();
    held_ = true;
  }

  ~InotifyWrap() override {
    // Only reachable while open during environment teardown (we hold a strong
    // reference otherwise); JS state is being torn down, so touch only uv/fd.
    if (native_ != nullptr) ShutdownNative(native_);
  }

  void Detach() { native_ = nullptr; }

 private:
  static void OnPollReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* n = static_cast<Native*>(handle->data);
    if (n->owner != nullptr) n->owner->OnReadable(status);
  }

  static void OnEnvTeardown(napi_async_cleanup_hook_handle /*handle*/, void* data) {
    ShutdownNative(static_cast<Native*>(data));
  }

  void OnReadable(int status) {
    std::vector<RawEvent> batch;
    int err = status < 0 ? -status : DrainEvents(native_, batch);
    if (err != 0) {
      // A persistent error on a level-triggered handle would spin the loop;
      // stop polling and let JS decide (the wrapper surfaces it as an error).
      uv_poll_stop(&native_->poll);
    }
    if (batch.empty() && err == 0) return;
    Deliver(batch, err);
  }

  void Deliver(const std::vector<RawEvent>& batch, int err) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      Napi::Array events = Napi::Array::New(env, batch.size());
      for (size_t i = 0; i < batch.size(); ++i) events.Set(static_cast<uint32_t>(i), ToJs(env, batch[i]));
      Napi::Value error = err != 0 ? ErrnoError(env, err, "read", "").Value() : env.Undefined();
      // MakeCallback (not Call) opens a callback scope: promise jobs and
      // nextTicks queued by the handler run before the loop moves on, and
      // async_hooks/AsyncLocalStorage see a proper async context.
      callback_.MakeCallback(Value(), {events, error}, async_context_);
    } catch (const Napi::Error& e) {
      // Same fate as a throw from any other event-loop callback: process
      // 'uncaughtException', which by default terminates the service.
      napi_fatal_exception(env, e.Value());
    }
  }

  static Napi::Object ToJs(Napi::Env env, const RawEvent& ev) {
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("wd", Napi::Number::New(env, ev.wd));
    obj.Set("mask", Napi::Number::New(env, ev.mask));
    obj.Set("cookie", Napi::Number::New(env, ev.cookie));
    // Bytes, not a string: SFTP clients upload names in any encoding.
    obj.Set("name", ev.name.empty() ? env.Undefined()
                                    : Napi::Buffer<char>::Copy(env, ev.name.data(), ev.name.size()).As<Napi::Value>());
    return obj;
  }

  static std::string PathArg(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path;
    if (info[0].IsString()) {
      path = info[0].As<Napi::String>().Utf8Value();
    } else if (info[0].IsBuffer()) {
      auto buf = info[0].As<Napi::Buffer<char>>();
      path.assign(buf.Data(), buf.Length());
    } else {
      throw Napi::TypeError::New(env, "addWatch: path must be a string or Buffer");
    }
    // The kernel would silently watch a truncated path.
    if (path.empty() || path.find('\0') != std::string::npos) {
      throw CodedError(env, "ERR_INVALID_ARG_VALUE", "addWatch: path must be non-empty and contain no NUL bytes");
    }
    return path;
  }

  Napi::Value AddWatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = PathArg(info);
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "addWatch: mask must be a number");
    uint32_t mask = info[1].As<Napi::Number>().Uint32Value();
    if (native_ == nullptr) throw CodedError(env, "ERR_INOTIFY_CLOSED", "inotify_add_watch " + path + ": instance is closed");
    int wd = inotify_add_watch(native_->fd, path.c_str(), mask);
    if (wd < 0) throw ErrnoError(env, errno, "inotify_add_watch", path);
    return Napi::Number::New(env, wd);
  }

  Napi::Value RmWatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "rmWatch: wd must be a number");
    int wd = info[0].As<Napi::Number>().Int32Value();
    // Closing the fd already dropped every watch.
    if (native_ == nullptr) return Napi::Boolean::New(env, false);
    if (inotify_rm_watch(native_->fd, wd) == 0) return Napi::Boolean::New(env, true);
    // EINVAL: the kernel already removed it (directory deleted/unmounted,
    // IN_IGNORED sent) or it never existed. Either way the watch is gone.
    if (errno == EINVAL) return Napi::Boolean::New(env, false);
    throw ErrnoError(env, errno, "inotify_rm_watch", "");
  }

  void Close(const Napi::CallbackInfo& info) {
    if (native_ != nullptr) ShutdownNative(native_);
    callback_.Reset();
    if (async_context_ != nullptr) {
      napi_async_destroy(info.Env(), async_context_);
      async_context_ = nullptr;
    }
    if (held_) {
      held_ = false;
      Unref();
    }
  }

  void JsRef(const Napi::CallbackInfo&) {
    if (native_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&native_->poll));
  }

  void JsUnref(const Napi::CallbackInfo&) {
    if (native_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&native_->poll));
  }

  Native* native_ = nullptr;
  Napi::FunctionReference callback_;
  napi_async_context async_context_ = nullptr;
  bool held_ = false;
};

// Shared by close(), finalization and environment teardown, whichever comes
// first; later callers find `closing` set and do nothing.
void ShutdownNative(Native* n) {
  if (n->owner != nullptr) {
    n->owner->Detach();
    n->owner = nullptr;
  }
  if (n->closing) return;
  n->closing = true;
  uv_poll_stop(&n->poll);
  // Safe right after uv_poll_stop: libuv has already dropped the fd from epoll.
  ::close(n->fd);
  n->fd = -1;
  uv_close(reinterpret_cast<uv_handle_t*>(&n->poll), OnPollClosed);
}

}  // namespace

namespace sftppush {

void RegisterInotify(Napi::Env env, Napi::Object exports) {
  exports.Set("Inotify", InotifyWrap::DefineClass(env));
}

}  // namespace sftppush
