// Codec<T>: how an element crosses ranks in wide operations and gathers. Trivially copyable types,
// strings, vectors, pairs and tuples are handled here; other types specialise Codec.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lockstep::data {

template <typename T, typename Enable = void> struct Codec;

// Every Codec has encode (append to a string), decode (advance a pointer) and size (the bytes
// encode will append), so wide operations can lay out a send buffer before writing it.
template <typename T> struct Codec<T, std::enable_if_t<std::is_trivially_copyable_v<T>>> {
  static std::size_t size(const T&) { return sizeof(T); }
  static void encode(const T& v, std::string& out) { out.append(reinterpret_cast<const char*>(&v), sizeof(T)); }
  static T decode(const char*& p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
};

template <typename U> struct Codec<std::vector<U>> {
  static std::size_t size(const std::vector<U>& v) {
    if constexpr (std::is_trivially_copyable_v<U>) {
      return sizeof(std::uint64_t) + v.size() * sizeof(U);
    } else {
      std::size_t n = sizeof(std::uint64_t);
      for (const auto& x : v) n += Codec<U>::size(x);
      return n;
    }
  }
  static void encode(const std::vector<U>& v, std::string& out) {
    Codec<std::uint64_t>::encode(v.size(), out);
    if constexpr (std::is_trivially_copyable_v<U>) {
      out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(U));
    } else {
      for (const auto& x : v) Codec<U>::encode(x, out);
    }
  }
  static std::vector<U> decode(const char*& p) {
    const auto n = Codec<std::uint64_t>::decode(p);
    std::vector<U> v;
    if constexpr (std::is_trivially_copyable_v<U>) {
      v.resize(n);
      std::memcpy(v.data(), p, n * sizeof(U));
      p += n * sizeof(U);
    } else {
      v.reserve(n);
      for (std::uint64_t i = 0; i < n; ++i) v.push_back(Codec<U>::decode(p));
    }
    return v;
  }
};

template <> struct Codec<std::string> {
  static std::size_t size(const std::string& v) { return sizeof(std::uint64_t) + v.size(); }
  static void encode(const std::string& v, std::string& out) {
    Codec<std::uint64_t>::encode(v.size(), out);
    out.append(v);
  }
  static std::string decode(const char*& p) {
    const auto n = Codec<std::uint64_t>::decode(p);
    std::string s(p, n);
    p += n;
    return s;
  }
};

template <typename A, typename B>
struct Codec<std::pair<A, B>, std::enable_if_t<!std::is_trivially_copyable_v<std::pair<A, B>>>> {
  static std::size_t size(const std::pair<A, B>& v) { return Codec<A>::size(v.first) + Codec<B>::size(v.second); }
  static void encode(const std::pair<A, B>& v, std::string& out) {
    Codec<A>::encode(v.first, out);
    Codec<B>::encode(v.second, out);
  }
  static std::pair<A, B> decode(const char*& p) {
    A a = Codec<A>::decode(p);
    B b = Codec<B>::decode(p);
    return {std::move(a), std::move(b)};
  }
};

template <typename U>
struct Codec<std::optional<U>, std::enable_if_t<!std::is_trivially_copyable_v<std::optional<U>>>> {
  static std::size_t size(const std::optional<U>& v) { return 1 + (v ? Codec<U>::size(*v) : 0); }
  static void encode(const std::optional<U>& v, std::string& out) {
    out.push_back(v ? '\1' : '\0');
    if (v) Codec<U>::encode(*v, out);
  }
  static std::optional<U> decode(const char*& p) {
    if (*p++ == '\0') return std::nullopt;
    return Codec<U>::decode(p);
  }
};

template <typename T> void encode_all(const std::vector<T>& v, std::string& out) {
  for (const auto& x : v) Codec<T>::encode(x, out);
}
template <typename T> void decode_all(const std::string& bytes, std::vector<T>& out) {
  const char* p = bytes.data();
  const char* end = p + bytes.size();
  while (p < end) out.push_back(Codec<T>::decode(p));
}

}  // namespace lockstep::data
