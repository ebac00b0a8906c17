// Address, the socket address of reprise's TCP API: it lives in runtime/address.hpp (wake-ups carry one).
#pragma once

#include "reprise/runtime/address.hpp"
