// Decoding one image file (PNG through libpng, JPEG through libjpeg-turbo) into 8-bit pixels.
// Every libpng and libjpeg call is in image_decode.cpp; the rest of the library sees only this.
// Private to the library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lockstep::data::detail {

// Pixels row-major, channel-interleaved (H x W x C), 8 bits per value.
struct DecodedImage {
  std::int64_t height = 0, width = 0;
  int channels = 0;  // 1 or 3
  std::vector<std::uint8_t> pixels;
};

// The largest image accepted: width * height (of the file's header) at most this many pixels;
// a header that claims more is refused before anything is allocated.
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 26;  // 67M pixels, 8192 x 8192
// The largest file read into memory to be decoded.
inline constexpr std::int64_t kMaxImageFileBytes = std::int64_t{1} << 30;

// Reads and decodes `path` (PNG or JPEG, told apart by the file's first bytes, not its name) into
// `channels` (1 or 3) channels: grayscale is replicated to RGB, RGB is reduced to luma with PIL's
// "L" weights (299/587/114 per mille, rounded), alpha is dropped (as PIL's convert("RGB") does),
// palettes are expanded, 16-bit samples are scaled to 8 bits and 1/2/4-bit ones expanded. Any
// problem (empty, truncated or corrupt file, an unknown format, dimensions over the bound) is a
// DataError "<path>: <what is wrong>". Never exits or aborts: the libraries' error handlers are
// replaced. Thread-compatible (no shared state).
DecodedImage decode_image_file(const std::string& path, int channels);

// What the first bytes say: a PNG (its 8-byte signature), a JPEG (FF D8 FF), or neither.
enum class ImageFormat { kNone, kPng, kJpeg };
ImageFormat image_format(const std::uint8_t* data, std::size_t size);

// The same from bytes already in memory; `path` names them in messages.
DecodedImage decode_image_bytes(const std::string& path, const std::uint8_t* data, std::size_t size, int channels);

}  // namespace lockstep::data::detail
