// Entry point of sftppush's native addon (binding.gyp target sftppush_inotify,
// build/Release/sftppush_inotify.node): one module, one export per part.

#include "addon.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  sftppush::RegisterInotify(env, exports);
  sftppush::RegisterFlock(env, exports);
  sftppush::RegisterLease(env, exports);
  sftppush::RegisterStat(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sftppush_inotify, Init)
