// The whole public API of reprise in one include.
#pragma once

#include "clock/clock.hpp"
#include "clock/time.hpp"
#include "io/address.hpp"
#include "io/file.hpp"
#include "io/input.hpp"
#include "io/offload.hpp"
#include "io/random.hpp"
#include "io/signal.hpp"
#include "io/tcp.hpp"
#include "runtime/limits.hpp"
#include "runtime/main.hpp"
#include "runtime/result.hpp"
#include "runtime/runtime.hpp"
#include "runtime/sync.hpp"
#include "runtime/task.hpp"
#include "runtime/wait_list.hpp"
