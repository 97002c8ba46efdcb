// Every libpng and libjpeg call of the project (see image_decode.hpp).
//
// Both libraries report a fatal error by calling a handler that must not return; their default
// handlers print and call exit() (libjpeg) or abort() after longjmp to nowhere (libpng without a
// jmp_buf). Here the handlers copy the library's message into the decode's context and longjmp
// back to the one setjmp of each decode, which destroys the library's state and returns false;
// the C++ caller then throws a DataError naming the file. Between a setjmp and its longjmp no
// object with a destructor lives in the frame that called setjmp, and everything the frame
// changes after setjmp lives in a context the caller owns (automatic variables changed after
// setjmp are indeterminate after the longjmp), so the jump skips no destructor and reads nothing
// indeterminate.
#include "data/image_decode.hpp"

#include <csetjmp>
#include <cstdio>
#include <cstring>
// clang-format off: jpeglib.h needs <cstdio> before it, and jerror.h after it.
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <png.h>

#include "data/source_util.hpp"
#include "lockstep/core/error.hpp"

namespace lockstep::data::detail {
namespace {

constexpr std::size_t kMsg = 320;

std::string too_large(std::int64_t w, std::int64_t h) {
  return "declared dimensions " + std::to_string(w) + " x " + std::to_string(h) + " exceed the bound of " +
         std::to_string(kMaxImagePixels) + " pixels (8192 x 8192); is the file corrupt?";
}

// ---- PNG --------------------------------------------------------------------------------------

struct PngContext {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0, pos = 0;
  char msg[kMsg] = {};
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<png_bytep> rows;
};

[[noreturn]] void png_fail(png_structp png, png_const_charp message) {
  auto* c = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(c->msg, kMsg, "%s", message ? message : "unknown libpng error");
  png_longjmp(png, 1);
}
void png_ignore_warning(png_structp, png_const_charp) {}  // libpng continues with correct pixels

void png_read_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* c = static_cast<PngContext*>(png_get_io_ptr(png));
  if (c->size - c->pos < n) png_error(png, "file ends early (truncated PNG)");
  std::memcpy(out, c->data + c->pos, n);
  c->pos += n;
}

// Sets the transformations that leave 8-bit gray or RGB, and sizes the pixels. false: too large.
bool png_prepare(PngContext* c, DecodedImage* img) {
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0;
  png_get_IHDR(c->png, c->info, &w, &h, &depth, &color, nullptr, nullptr, nullptr);
  if (static_cast<std::int64_t>(w) * static_cast<std::int64_t>(h) > kMaxImagePixels) {
    std::snprintf(c->msg, kMsg, "%s", too_large(w, h).c_str());
    return false;
  }
  if (depth == 16) png_set_scale_16(c->png);  // v * 255 / 65535, rounded
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
  png_set_strip_alpha(c->png);  // tRNS is never expanded, so palette/gray transparency is dropped too
  png_set_interlace_handling(c->png);
  png_read_update_info(c->png, c->info);
  img->width = w;
  img->height = h;
  img->channels = png_get_channels(c->png, c->info);
  const std::size_t stride = png_get_rowbytes(c->png, c->info);
  img->pixels.resize(stride * h);
  c->rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) c->rows[y] = img->pixels.data() + y * stride;
  return true;
}

bool png_decode(PngContext* c, DecodedImage* img) {
  c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_fail, png_ignore_warning);
  if (c->png) c->info = png_create_info_struct(c->png);
  if (!c->png || !c->info) {
    std::snprintf(c->msg, kMsg, "out of memory creating the PNG decoder");
    png_destroy_read_struct(c->png ? &c->png : nullptr, nullptr, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(c->png))) {
    png_destroy_read_struct(&c->png, &c->info, nullptr);
    return false;
  }
  png_set_read_fn(c->png, c, png_read_memory);
  png_read_info(c->png, c->info);
  const bool ok = png_prepare(c, img);
  if (ok) {
    png_read_image(c->png, c->rows.data());
    png_read_end(c->png, nullptr);  // the chunks after the pixels, to IEND: a cut file fails here
  }
  png_destroy_read_struct(&c->png, &c->info, nullptr);
  return ok;
}

// ---- JPEG -------------------------------------------------------------------------------------

struct JpegContext {
  jpeg_error_mgr err{};
  std::jmp_buf jump{};
  char msg[kMsg] = {};
  jpeg_decompress_struct cinfo{};
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* c = reinterpret_cast<JpegContext*>(cinfo->err);  // err is the context's first member
  char text[JMSG_LENGTH_MAX] = {};
  (*cinfo->err->format_message)(cinfo, text);
  std::snprintf(c->msg, kMsg, "%s", text);
  std::longjmp(c->jump, 1);
}

// libjpeg reports a truncated or damaged stream as a warning (level -1) and goes on, filling the
// rest with gray: here every warning but stray bytes between markers is an error.
void jpeg_warning(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code != JWRN_EXTRANEOUS_DATA) jpeg_fail(cinfo);
}
void jpeg_quiet(j_common_ptr) {}

bool jpeg_prepare(JpegContext* c, DecodedImage* img) {
  jpeg_decompress_struct& ci = c->cinfo;
  const std::int64_t w = ci.image_width, h = ci.image_height;
  if (w * h > kMaxImagePixels) {
    std::snprintf(c->msg, kMsg, "%s", too_large(w, h).c_str());
    return false;
  }
  if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
    std::snprintf(c->msg, kMsg, "a CMYK JPEG, which is not supported (convert it to RGB)");
    return false;
  }
  ci.out_color_space = ci.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  return true;
}

bool jpeg_decode(JpegContext* c, const std::uint8_t* data, std::size_t size, DecodedImage* img) {
  c->cinfo.err = jpeg_std_error(&c->err);
  c->err.error_exit = jpeg_fail;
  c->err.emit_message = jpeg_warning;
  c->err.output_message = jpeg_quiet;
  if (setjmp(c->jump)) {
    jpeg_destroy_decompress(&c->cinfo);
    return false;
  }
  jpeg_create_decompress(&c->cinfo);
  jpeg_mem_src(&c->cinfo, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
  jpeg_read_header(&c->cinfo, TRUE);
  const bool ok = jpeg_prepare(c, img);
  if (ok) {
    jpeg_start_decompress(&c->cinfo);
    img->width = c->cinfo.output_width;
    img->height = c->cinfo.output_height;
    img->channels = c->cinfo.output_components;
    const std::size_t stride = static_cast<std::size_t>(img->width) * static_cast<std::size_t>(img->channels);
    img->pixels.resize(stride * static_cast<std::size_t>(img->height));
    while (c->cinfo.output_scanline < c->cinfo.output_height) {
      JSAMPROW row = img->pixels.data() + c->cinfo.output_scanline * stride;
      jpeg_read_scanlines(&c->cinfo, &row, 1);
    }
    jpeg_finish_decompress(&c->cinfo);
  }
  jpeg_destroy_decompress(&c->cinfo);
  return ok;
}

// ---- channels ---------------------------------------------------------------------------------

void convert_channels(DecodedImage& img, int channels) {
  if (img.channels == channels) return;
  const std::size_t n = static_cast<std::size_t>(img.width * img.height);
  std::vector<std::uint8_t> out(n * static_cast<std::size_t>(channels));
  const std::uint8_t* p = img.pixels.data();
  if (channels == 3) {  // gray -> RGB
    for (std::size_t i = 0; i < n; ++i) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = p[i];
  } else {  // RGB -> L, PIL's integer form of 0.299 R + 0.587 G + 0.114 B
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t v = p[3 * i] * 19595u + p[3 * i + 1] * 38470u + p[3 * i + 2] * 7471u + 0x8000u;
      out[i] = static_cast<std::uint8_t>(v >> 16);
    }
  }
  img.pixels = std::move(out);
  img.channels = channels;
}

std::string first_bytes(const std::uint8_t* data, std::size_t size) {
  std::string s;
  char buf[4];
  for (std::size_t i = 0; i < size && i < 8; ++i) {
    std::snprintf(buf, sizeof buf, "%s%02x", i ? " " : "", data[i]);
    s += buf;
  }
  return s;
}

}  // namespace

ImageFormat image_format(const std::uint8_t* data, std::size_t size) {
  static constexpr std::uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 8 && std::memcmp(data, kPng, 8) == 0) return ImageFormat::kPng;
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::kJpeg;
  return ImageFormat::kNone;
}

DecodedImage decode_image_bytes(const std::string& path, const std::uint8_t* data, std::size_t size, int channels) {
  DecodedImage img;
  if (size == 0) throw DataError(path + ": empty file (0 bytes), expected a PNG or JPEG image");
  const ImageFormat format = image_format(data, size);
  if (format == ImageFormat::kPng) {
    PngContext c;
    c.data = data;
    c.size = size;
    if (!png_decode(&c, &img)) throw DataError(path + ": cannot decode PNG: " + c.msg);
  } else if (format == ImageFormat::kJpeg) {
    JpegContext c;
    if (!jpeg_decode(&c, data, size, &img)) throw DataError(path + ": cannot decode JPEG: " + c.msg);
  } else {
    throw DataError(path + ": not a PNG or JPEG image (it starts with the bytes " + first_bytes(data, size) +
                    "; the format is told by content, not by the file name)");
  }
  if (img.channels != 1 && img.channels != 3)
    throw DataError(path + ": decoded to " + std::to_string(img.channels) + " channels, expected 1 or 3");
  convert_channels(img, channels);
  return img;
}

DecodedImage decode_image_file(const std::string& path, int channels) {
  File f = open_file(path);
  const std::int64_t size = file_size(f.get(), path);
  if (size > kMaxImageFileBytes) {
    throw DataError(path + ": " + std::to_string(size) + " bytes, more than the " +
                    std::to_string(kMaxImageFileBytes) + " an image file may have");
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::rewind(f.get());  // file_size left it at the end
  if (size > 0 && std::fread(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
    throw DataError(path + ": cannot read " + std::to_string(size) + " bytes");
  return decode_image_bytes(path, bytes.data(), bytes.size(), channels);
}

}  // namespace lockstep::data::detail
