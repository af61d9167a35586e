// flock(2) for the instance lock (src/ledger/instance-lock.ts). Node has
// fs.open but no flock, and fcntl locks (which it lacks too) are the wrong
// kind: see src/native/flock.ts for why flock.
//
// One synchronous call, no state: the fd belongs to the caller (opened and
// closed with node:fs). A blocking request (no LOCK_NB) blocks the JS thread
// until the lock is granted, so callers use LOCK_NB.

#include <sys/file.h>
#include <uv.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <string>

#include "addon.h"

namespace {

// The TypeScript side hard-codes these (src/native/flock.ts); they are ABI,
// but fail the build rather than ship a wrapper that disagrees with the headers.
static_assert(LOCK_SH == 1, "LOCK_SH");
static_assert(LOCK_EX == 2, "LOCK_EX");
static_assert(LOCK_NB == 4, "LOCK_NB");
static_assert(LOCK_UN == 8, "LOCK_UN");

// flock(2) reports a held lock as EWOULDBLOCK, which Linux defines as EAGAIN
// (so uv_err_name says "EAGAIN"); callers test for one name, the man page's.
std::string ErrnoName(int err) {
  if (err == EWOULDBLOCK || err == EAGAIN) return "EWOULDBLOCK";
  return uv_err_name(-err);
}

Napi::Error FlockError(Napi::Env env, int err, int fd) {
  std::string code = ErrnoName(err);
  Napi::Error error =
      Napi::Error::New(env, "flock fd " + std::to_string(fd) + ": " + code + " (" + std::strerror(err) + ")");
  error.Set("code", Napi::String::New(env, code));
  // Positive, as in os.constants.errno, so callers can compare directly.
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, "flock"));
  return error;
}

// A non-integer would be truncated to some other fd (NaN to 0, stdin):
// refuse it rather than lock the wrong file.
int IntArg(const Napi::CallbackInfo& info, size_t index, const char* name, int min) {
  Napi::Env env = info.Env();
  if (!info[index].IsNumber()) throw Napi::TypeError::New(env, std::string("flock: ") + name + " must be a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= min && value <= INT_MAX && std::floor(value) == value)) {
    throw Napi::RangeError::New(env, std::string("flock: ") + name + " must be an integer from " +
                                         std::to_string(min) + " to " + std::to_string(INT_MAX));
  }
  return static_cast<int>(value);
}

Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd", 0);
  int operation = IntArg(info, 1, "operation", 0);
  int rc;
  // A blocking request is interrupted by any signal the process handles.
  do {
    rc = ::flock(fd, operation);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) throw FlockError(info.Env(), errno, fd);
  return info.Env().Undefined();
}

}  // namespace

namespace sftppush {

void RegisterFlock(Napi::Env env, Napi::Object exports) {
  exports.Set("flock", Napi::Function::New<Flock>(env, "flock"));
}

}  // namespace sftppush
