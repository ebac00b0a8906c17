// Codec<T>, how a value becomes trace bytes and back: it lives in runtime/codec.hpp (inputs and offload results use it).
#pragma once

#include "reprise/runtime/codec.hpp"
