// Tensor: shapes and sizes, owned storage (zero-filled, 64-byte aligned), borrowed storage (a view
// of someone else's memory, which the tensor never frees), row views and reshapes that share
// storage, and clone, which does not.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "lockstep/core/tensor.hpp"

using namespace lockstep;

TEST(Tensor, ShapeNumelAndBytes) {
  const Tensor t({2, 3, 4}, DType::kF64);
  EXPECT_EQ(t.ndim(), 3);
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.bytes(), 24u * 8u);
  EXPECT_EQ(t.dtype(), DType::kF64);
  EXPECT_EQ(t.device(), Device::kCpu);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(shape_str(t.shape()), "[2, 3, 4]");
  EXPECT_EQ(shape_numel({}), 1);  // a scalar
  EXPECT_EQ(shape_numel({5, 0}), 0);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_STREQ(dtype_name(DType::kBF16), "bfloat16");
  EXPECT_FALSE(Tensor().defined());
  EXPECT_THROW(Tensor({2, -1}), Error);
}

TEST(Tensor, OwnedStorageIsZeroFilledAndAligned) {
  const Tensor t({7, 5});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw()) % 64, 0u);
  for (float x : t.span<float>()) ASSERT_EQ(x, 0.0f);
  EXPECT_THROW(t.data<double>(), Error);  // the dtype is checked on access
  const Tensor empty({0, 3});
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_TRUE(empty.defined());
}

TEST(Tensor, BorrowViewsForeignMemory) {
  std::vector<float> mem{1, 2, 3, 4, 5, 6};
  {
    Tensor t = Tensor::borrow(mem.data(), {2, 3});
    EXPECT_EQ(t.data<float>(), mem.data());
    EXPECT_EQ(t.data<float>()[4], 5.0f);
    t.data<float>()[0] = 10.0f;  // writes go to the owner's memory
    t.zero_();
  }  // and the tensor going away frees nothing (the vector is freed by its owner; ASan would see)
  EXPECT_EQ(mem, std::vector<float>(6, 0.0f));
}

TEST(Tensor, RowsAndReshapeShareStorage) {
  Tensor t({4, 3}, DType::kI32);
  for (std::int32_t i = 0; i < 12; ++i) t.data<std::int32_t>()[i] = i;
  const Tensor mid = t.rows(1, 3);
  EXPECT_EQ(mid.shape(), (Shape{2, 3}));
  EXPECT_EQ(mid.data<std::int32_t>(), t.data<std::int32_t>() + 3);
  EXPECT_EQ(mid.data<std::int32_t>()[0], 3);
  mid.data<std::int32_t>()[5] = -1;  // last element of row 2 of t
  EXPECT_EQ(t.data<std::int32_t>()[8], -1);
  // A view of a view, and an empty one at the end.
  const Tensor last = mid.rows(1, 2);
  EXPECT_EQ(last.data<std::int32_t>(), t.data<std::int32_t>() + 6);
  EXPECT_EQ(t.rows(4, 4).numel(), 0);
  EXPECT_THROW(t.rows(2, 5), Error);
  EXPECT_THROW(t.rows(3, 2), Error);
  // Rows of a borrowed tensor stay borrowed views.
  std::vector<double> mem(8, 1.0);
  const Tensor b = Tensor::borrow(mem.data(), {4, 2}, DType::kF64).rows(2, 4);
  EXPECT_EQ(b.data<double>(), mem.data() + 4);
  // Reshape keeps the storage and the offset of a view.
  const Tensor flat = mid.reshape({6});
  EXPECT_EQ(flat.data<std::int32_t>(), mid.data<std::int32_t>());
  EXPECT_THROW(t.reshape({5, 2}), Error);
}

TEST(Tensor, CloneCopiesAndCopyFromChecks) {
  Tensor t({3, 2});
  for (int i = 0; i < 6; ++i) t.data<float>()[i] = static_cast<float>(i) + 0.5f;
  const Tensor view = t.rows(1, 3);
  const Tensor c = view.clone();
  EXPECT_NE(c.data<float>(), view.data<float>());
  EXPECT_EQ(c.shape(), view.shape());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(c.data<float>()[i], static_cast<float>(i + 2) + 0.5f);
  t.zero_();  // the clone does not see later writes
  EXPECT_EQ(c.data<float>()[0], 2.5f);
  EXPECT_EQ(view.data<float>()[0], 0.0f);
  Tensor d({2, 2});
  d.copy_from(c);
  EXPECT_EQ(d.data<float>()[3], 5.5f);
  EXPECT_THROW(d.copy_from(Tensor({3})), Error);
  EXPECT_THROW(d.copy_from(Tensor({2, 2}, DType::kF64)), Error);
}
