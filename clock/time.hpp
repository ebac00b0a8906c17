// Time types of reprise (Duration, Instant, WallTime, Deadline): they live in runtime/time.hpp, the core's vocabulary.
#pragma once

#include "reprise/runtime/time.hpp"
