// ByteBuffer: a growable FIFO of bytes for connection input and output.
#pragma once

#include "reprise/runtime/internal/private.hpp"
#include "reprise/runtime/assert.hpp"

#include <cstring>
#include <memory>
#include <string_view>

namespace reprise::detail {

/// Bytes appended at the back and consumed from the front. Storage is compacted
/// lazily and released when the buffer empties past `keep_bytes`, so an idle
/// connection holds no buffer memory.
class ByteBuffer {
public:
    static constexpr std::size_t keep_bytes = 16 * 1024;

    std::size_t size() const noexcept { return end_ - begin_; }
    bool empty() const noexcept { return begin_ == end_; }
    std::string_view view() const noexcept { return {data_.get() + begin_, size()}; }

    void append(std::string_view bytes) {
        if (bytes.empty())
            return;
        reserve_back(bytes.size());
        std::memcpy(data_.get() + end_, bytes.data(), bytes.size());
        end_ += bytes.size();
    }

    void consume(std::size_t n) noexcept {
        REPRISE_ASSERT(n <= size());
        begin_ += n;
        if (begin_ == end_) {
            begin_ = end_ = 0;
            if (capacity_ > keep_bytes)
                release();
        }
    }

    void release() noexcept {
        data_.reset();
        capacity_ = begin_ = end_ = 0;
    }

private:
    void reserve_back(std::size_t n) {
        if (end_ + n <= capacity_)
            return;
        std::size_t live = size();
        if (live + n <= capacity_ && begin_ >= capacity_ / 2) {
            std::memmove(data_.get(), data_.get() + begin_, live);
        } else {
            std::size_t cap = capacity_ ? capacity_ : 512;
            while (cap < live + n)
                cap *= 2;
            auto bigger = std::make_unique_for_overwrite<char[]>(cap);
            if (live)
                std::memcpy(bigger.get(), data_.get() + begin_, live);
            data_ = std::move(bigger);
            capacity_ = cap;
        }
        begin_ = 0;
        end_ = live;
    }

    std::unique_ptr<char[]> data_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

} // namespace reprise::detail
