// The one native addon's parts. Each native/*.cc registers its exports through
// one function here; native/addon.cc is the module's only entry point.
#pragma once

#include <napi.h>

namespace sftppush {

// native/inotify.cc: the `Inotify` class.
void RegisterInotify(Napi::Env env, Napi::Object exports);

// native/flock.cc: `flock(fd, operation)`.
void RegisterFlock(Napi::Env env, Napi::Object exports);

// native/lease.cc: `probeWriteLease(fd)`.
void RegisterLease(Napi::Env env, Napi::Object exports);

// native/stat.cc: `lstatAt(dir, names)`, a promise.
void RegisterStat(Napi::Env env, Napi::Object exports);

}  // namespace sftppush
