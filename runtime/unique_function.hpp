// UniqueFunction: a move-only void() callable, so tasks can own move-only state (a Connection).
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace reprise {

/// Like std::function<void()>, but holds move-only callables (std::move_only_function
/// is C++23).
class UniqueFunction {
public:
    UniqueFunction() = default;
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, UniqueFunction>>>
    UniqueFunction(F&& f) : impl_(std::make_unique<Model<std::decay_t<F>>>(std::forward<F>(f))) {}

    void operator()() { impl_->call(); }
    explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
    struct Concept {
        virtual ~Concept() = default;
        virtual void call() = 0;
    };
    template <class F>
    struct Model final : Concept {
        explicit Model(F&& f) : fn(std::move(f)) {}
        explicit Model(const F& f) : fn(f) {}
        void call() override { fn(); }
        F fn;
    };
    std::unique_ptr<Concept> impl_;
};

} // namespace reprise
