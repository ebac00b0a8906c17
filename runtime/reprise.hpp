// The whole public API of reprise in one include.
#pragma once

#include "reprise/clock/clock.hpp"
#include "reprise/clock/time.hpp"
#include "reprise/io/address.hpp"
#include "reprise/io/file.hpp"
#include "reprise/io/input.hpp"
#include "reprise/io/offload.hpp"
#include "reprise/io/random.hpp"
#include "reprise/io/signal.hpp"
#include "reprise/io/tcp.hpp"
#include "reprise/runtime/limits.hpp"
#include "reprise/runtime/main.hpp"
#include "reprise/runtime/result.hpp"
#include "reprise/runtime/runtime.hpp"
#include "reprise/runtime/sync.hpp"
#include "reprise/runtime/task.hpp"
#include "reprise/runtime/wait_list.hpp"
