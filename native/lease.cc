// "Is a writer holding this file open right now?", answered by the kernel: fcntl(fd, F_SETLEASE, F_RDLCK) is
// refused with EAGAIN while any open file description of the inode, in any process (ours included), is open for
// writing. On success the lease is dropped at once (F_SETLEASE, F_UNLCK): we never hold one. See
// src/native/lease.ts for the typed wrapper and what each answer means.
//
// One synchronous call, no state: the fd belongs to the caller (opened O_RDONLY and closed with node:fs).
//
// SIGIO. A lease holder is told of a lease break by a signal to the process that took the lease: if another open
// for writing (or a truncate) breaks ours in the few microseconds before we drop it, the kernel sends this process
// SIGIO, whose default action terminates it ("I/O possible"); Node installs no handler. While the lease may exist
// we therefore set SIGIO to SIG_IGN if it is at SIG_DFL (a signal generated while ignored is discarded, not left
// pending) and restore the disposition afterwards. The break and our F_UNLCK serialise on the inode's lease lock,
// so no break signal can be generated after the unlock. A SIGIO handler installed by someone else
// (process.on('SIGIO')) is left in place and may see such a signal. test/integration/lease.test.ts races a writer
// against the probe to check this.

#include <fcntl.h>
#include <signal.h>
#include <uv.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <string>

#include "addon.h"

namespace {

Napi::Error LeaseError(Napi::Env env, int err, int fd, const char* what, const std::string& detail) {
  std::string code = uv_err_name(-err);
  Napi::Error error = Napi::Error::New(env, std::string(what) + " fd " + std::to_string(fd) + ": " + code + " (" +
                                                (detail.empty() ? std::strerror(err) : detail) + ")");
  error.Set("code", Napi::String::New(env, code));
  // Positive, as in os.constants.errno, so callers can compare directly.
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, "fcntl"));
  return error;
}

// A non-integer would be truncated to some other fd (NaN to 0, stdin): refuse it rather than probe the wrong file.
int FdArg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "probeWriteLease: fd must be a number");
  double value = info[0].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= INT_MAX && std::floor(value) == value)) {
    throw Napi::RangeError::New(env, "probeWriteLease: fd must be an integer from 0 to " + std::to_string(INT_MAX));
  }
  return static_cast<int>(value);
}

// SIGIO ignored while the lease may exist (see the top of this file), if nobody handles it; restored on scope exit.
class SigioGuard {
 public:
  SigioGuard() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGIO, nullptr, &saved_) == 0 && !(saved_.sa_flags & SA_SIGINFO) && saved_.sa_handler == SIG_DFL) {
      changed_ = sigaction(SIGIO, &ignore, nullptr) == 0;
    }
  }
  ~SigioGuard() {
    if (changed_) sigaction(SIGIO, &saved_, nullptr);
  }
  SigioGuard(const SigioGuard&) = delete;
  SigioGuard& operator=(const SigioGuard&) = delete;

 private:
  struct sigaction saved_ {};
  bool changed_ = false;
};

int Fcntl(int fd, int cmd, int arg) {
  int rc;
  do {
    rc = ::fcntl(fd, cmd, arg);
  } while (rc == -1 && errno == EINTR);
  return rc == -1 ? errno : 0;
}

// probeWriteLease(fd) -> errno of fcntl(fd, F_SETLEASE, F_RDLCK): 0 (granted, and already released), EAGAIN (a
// writer has the file open, or is opening it), EACCES/EPERM (not the owner and no CAP_LEASE, or an LSM said no),
// EINVAL (not a regular file, a filesystem without leases, or fs.leases-enable=0), or anything else. Throws
// (code/errno/syscall 'fcntl') when fd is not open, is not O_RDONLY (EBADF: a writable fd is itself a writer, so the
// answer would always be EAGAIN) or the lease cannot be released.
Napi::Value ProbeWriteLease(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info);

  int flags = ::fcntl(fd, F_GETFL);
  if (flags == -1) throw LeaseError(env, errno, fd, "fcntl(F_GETFL)", "");
  if ((flags & O_ACCMODE) != O_RDONLY) {
    throw LeaseError(env, EBADF, fd, "fcntl(F_SETLEASE)",
                     "not opened O_RDONLY: a read lease needs a read-only descriptor, a writable one is a writer");
  }

  SigioGuard guard;
  int err = Fcntl(fd, F_SETLEASE, F_RDLCK);
  if (err != 0) return Napi::Number::New(env, err);
  int unlockErr = Fcntl(fd, F_SETLEASE, F_UNLCK);
  // Never seen; if it happens the lease is still ours: say so loudly rather than answer and keep it.
  if (unlockErr != 0) throw LeaseError(env, unlockErr, fd, "fcntl(F_SETLEASE, F_UNLCK)", "");
  return Napi::Number::New(env, 0);
}

}  // namespace

namespace sftppush {

void RegisterLease(Napi::Env env, Napi::Object exports) {
  exports.Set("probeWriteLease", Napi::Function::New<ProbeWriteLease>(env, "probeWriteLease"));
}

}  // namespace sftppush
