// lstat(2) of many entries of one directory in one call, for the rescan
// (src/native/stat-at.ts): fstatat(2) relative to the directory, as find
// does, in a thread of libuv's pool. lstatSync paid Node's wrapping on top of
// each system call (a path resolved from the root, a BigIntStats with four
// Dates), on the JS thread, which the ledger reads need too.
//
// Resolves { numbers, ctimes }: per name, numbers[5 * i ...] = errno (0: ok),
// regular file (1/0), size, mtimeMs, inode; ctimes[i] = ctime in ns. Every
// value is computed as Node computes it for lstat(path, { bigint: true }) and
// src/pipeline/source-file.ts's toSourceStat converts it, so identities the
// ledger recorded either way compare equal.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "addon.h"

namespace {

constexpr uint32_t kFields = 5;
constexpr int64_t kNsPerSec = 1000000000;

// fstatat(2) of each name relative to `dir`, in a thread of libuv's pool: the JS thread meanwhile reads
// the directory's ledger rows (src/reconcile/scanner.ts), so the two costs of a rescan overlap.
class LstatWorker : public Napi::AsyncWorker {
 public:
  LstatWorker(Napi::Env env, std::string dir, std::vector<std::string> names)
      : Napi::AsyncWorker(env, "sftppush.lstatAt"),
        deferred_(Napi::Promise::Deferred::New(env)),
        dir_(std::move(dir)),
        names_(std::move(names)),
        numbers_(names_.size() * kFields),
        ctimes_(names_.size()) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    // O_NOFOLLOW: a directory swapped for a symlink since it was listed is not entered.
    int dirFd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int dirErr = dirFd < 0 ? errno : 0;
    for (size_t i = 0; i < names_.size(); i++) {
      const std::string& name = names_[i];
      double* out = numbers_.data() + i * kFields;
      int err = dirErr;
      struct stat st;
      if (err == 0) {
        if (name.empty() || name.find('/') != std::string::npos) {
          err = EINVAL;
        } else if (dir_.size() + 1 + name.size() >= PATH_MAX) {
          // Within reach of the directory, but the archiver opens files by their full path.
          err = ENAMETOOLONG;
        } else if (::fstatat(dirFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
          err = errno;
        }
      }
      out[0] = err;
      if (err != 0) continue;  // the rest stays 0
      // Node keeps size and inode in a BigInt64Array (signed), then toSourceStat takes Number() of them.
      int64_t mtimeNs = static_cast<int64_t>(st.st_mtim.tv_sec) * kNsPerSec + st.st_mtim.tv_nsec;
      out[1] = S_ISREG(st.st_mode) ? 1 : 0;
      out[2] = static_cast<double>(static_cast<int64_t>(st.st_size));
      // toSourceStat: Number(mtimeNs / 1e9n) * 1e3 + Number(mtimeNs % 1e9n) / 1e6, both truncating like C.
      out[3] = static_cast<double>(mtimeNs / kNsPerSec) * 1e3 + static_cast<double>(mtimeNs % kNsPerSec) / 1e6;
      out[4] = static_cast<double>(static_cast<int64_t>(st.st_ino));
      ctimes_[i] = static_cast<int64_t>(st.st_ctim.tv_sec) * kNsPerSec + st.st_ctim.tv_nsec;
    }
    if (dirFd >= 0) ::close(dirFd);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Float64Array numbers = Napi::Float64Array::New(env, numbers_.size());
    std::copy(numbers_.begin(), numbers_.end(), numbers.Data());
    Napi::BigInt64Array ctimes = Napi::BigInt64Array::New(env, ctimes_.size());
    std::copy(ctimes_.begin(), ctimes_.end(), ctimes.Data());
    Napi::Object result = Napi::Object::New(env);
    result.Set("numbers", numbers);
    result.Set("ctimes", ctimes);
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string dir_;
  std::vector<std::string> names_;
  std::vector<double> numbers_;
  std::vector<int64_t> ctimes_;
};

Napi::Value LstatAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsArray()) throw Napi::TypeError::New(env, "lstatAt(dir: string, names: string[])");
  Napi::Array names = info[1].As<Napi::Array>();
  std::vector<std::string> copied;
  copied.reserve(names.Length());
  for (uint32_t i = 0; i < names.Length(); i++) {
    Napi::Value name = names.Get(i);
    if (!name.IsString()) throw Napi::TypeError::New(env, "lstatAt: names must be strings");
    copied.push_back(name.As<Napi::String>().Utf8Value());
  }
  auto* worker = new LstatWorker(env, info[0].As<Napi::String>().Utf8Value(), std::move(copied));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // deleted by node-addon-api once it has run
  return promise;
}

}  // namespace

namespace sftppush {

void RegisterStat(Napi::Env env, Napi::Object exports) {
  exports.Set("lstatAt", Napi::Function::New<LstatAt>(env, "lstatAt"));
}

}  // namespace sftppush
