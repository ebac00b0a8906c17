// Codec<T>: how a value that is an input (an offloaded result, an app-defined input) becomes trace bytes and back.
#pragma once

#include "reprise/runtime/result.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace reprise {

/// Specialize for your own types: `static void encode(const T&, std::string& out)`
/// appends bytes; `static std::optional<T> decode(std::string_view& in)` consumes
/// them (nullopt when they do not decode). Provided: integers, enums, bool,
/// std::string, std::optional, std::vector, std::pair, Error and Result<T>.
template <class T, class = void>
struct Codec;

template <class T>
struct Codec<T, std::enable_if_t<std::is_integral_v<T> || std::is_enum_v<T>>> {
    static void encode(const T& v, std::string& out) {
        char b[sizeof(T)];
        std::memcpy(b, &v, sizeof(T));
        out.append(b, sizeof(T));
    }
    static std::optional<T> decode(std::string_view& in) {
        if (in.size() < sizeof(T))
            return std::nullopt;
        T v;
        std::memcpy(&v, in.data(), sizeof(T));
        in.remove_prefix(sizeof(T));
        return v;
    }
};

template <>
struct Codec<std::string> {
    static void encode(const std::string& v, std::string& out) {
        Codec<std::uint64_t>::encode(v.size(), out);
        out += v;
    }
    static std::optional<std::string> decode(std::string_view& in) {
        auto n = Codec<std::uint64_t>::decode(in);
        if (!n || *n > in.size())
            return std::nullopt;
        std::string v(in.substr(0, *n));
        in.remove_prefix(*n);
        return v;
    }
};

template <class T>
struct Codec<std::optional<T>> {
    static void encode(const std::optional<T>& v, std::string& out) {
        Codec<bool>::encode(v.has_value(), out);
        if (v)
            Codec<T>::encode(*v, out);
    }
    static std::optional<std::optional<T>> decode(std::string_view& in) {
        auto has = Codec<bool>::decode(in);
        if (!has)
            return std::nullopt;
        if (!*has)
            return std::optional<T>{};
        auto v = Codec<T>::decode(in);
        if (!v)
            return std::nullopt;
        return std::optional<T>(std::move(*v));
    }
};

template <class T>
struct Codec<std::vector<T>> {
    static void encode(const std::vector<T>& v, std::string& out) {
        Codec<std::uint64_t>::encode(v.size(), out);
        for (const T& item : v)
            Codec<T>::encode(item, out);
    }
    static std::optional<std::vector<T>> decode(std::string_view& in) {
        auto n = Codec<std::uint64_t>::decode(in);
        if (!n || *n > in.size())
            return std::nullopt;
        std::vector<T> v;
        for (std::uint64_t i = 0; i < *n; ++i) {
            auto item = Codec<T>::decode(in);
            if (!item)
                return std::nullopt;
            v.push_back(std::move(*item));
        }
        return v;
    }
};

template <class A, class B>
struct Codec<std::pair<A, B>> {
    static void encode(const std::pair<A, B>& v, std::string& out) {
        Codec<A>::encode(v.first, out);
        Codec<B>::encode(v.second, out);
    }
    static std::optional<std::pair<A, B>> decode(std::string_view& in) {
        auto a = Codec<A>::decode(in);
        auto b = a ? Codec<B>::decode(in) : std::nullopt;
        if (!b)
            return std::nullopt;
        return std::pair<A, B>(std::move(*a), std::move(*b));
    }
};

template <>
struct Codec<Error> {
    static void encode(const Error& e, std::string& out) {
        Codec<Errc>::encode(e.code, out);
        Codec<int>::encode(e.sys_errno, out);
    }
    static std::optional<Error> decode(std::string_view& in) {
        auto code = Codec<Errc>::decode(in);
        auto sys = code ? Codec<int>::decode(in) : std::nullopt;
        if (!sys)
            return std::nullopt;
        return Error{*code, *sys};
    }
};

template <class T>
struct Codec<Result<T>> {
    static void encode(const Result<T>& r, std::string& out) {
        Codec<bool>::encode(r.ok(), out);
        if (!r.ok())
            Codec<Error>::encode(r.error(), out);
        else if constexpr (!std::is_void_v<T>)
            Codec<T>::encode(r.value(), out);
    }
    static std::optional<Result<T>> decode(std::string_view& in) {
        auto ok = Codec<bool>::decode(in);
        if (!ok)
            return std::nullopt;
        if (!*ok) {
            auto e = Codec<Error>::decode(in);
            if (!e)
                return std::nullopt;
            return Result<T>(*e);
        }
        if constexpr (std::is_void_v<T>) {
            return Result<T>();
        } else {
            auto v = Codec<T>::decode(in);
            if (!v)
                return std::nullopt;
            return Result<T>(std::move(*v));
        }
    }
};

/// Encodes a value as trace bytes.
template <class T>
std::string encode_value(const T& v) {
    std::string out;
    Codec<T>::encode(v, out);
    return out;
}

/// Decodes trace bytes; nullopt unless they are exactly one T.
template <class T>
std::optional<T> decode_value(std::string_view in) {
    auto v = Codec<T>::decode(in);
    if (!v || !in.empty())
        return std::nullopt;
    return v;
}

} // namespace reprise
