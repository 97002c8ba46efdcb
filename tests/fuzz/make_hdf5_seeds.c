/* Writes the HDF5 seeds of corpus/hdf5/ (small valid files of the shapes read_hdf5_table takes,
 * and a few it must reject). Run from tests/fuzz/:
 *   (d=$PWD; cd /tmp && h5cc -o make_hdf5_seeds "$d/make_hdf5_seeds.c") && /tmp/make_hdf5_seeds corpus/hdf5 */
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

static void put(hid_t f, const char* name, hid_t type, int rank, const hsize_t* dims, const void* data, int chunked) {
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (chunked) {
    hsize_t chunk[8];
    for (int i = 0; i < rank; ++i) chunk[i] = dims[i] < 256 ? dims[i] : 256;
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_deflate(dcpl, 6);
  }
  hid_t d = H5Dcreate2(f, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (data) H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
}

static hid_t create(const char* dir, const char* name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  return f;
}

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : ".";
  float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  float y[4] = {0, 1, 0, 1};
  unsigned char yb[4] = {0, 1, 2, 1};
  double xd[8] = {0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5};
  hsize_t x2[2] = {4, 3}, y1[1] = {4}, x3[3] = {2, 2, 2}, y2[2] = {2, 1}, big[2] = {1000000, 1000};

  hid_t f = create(dir, "plain.h5");
  put(f, "/features", H5T_NATIVE_FLOAT, 2, x2, x, 0);
  put(f, "/labels", H5T_NATIVE_FLOAT, 1, y1, y, 0);
  H5Fclose(f);

  f = create(dir, "deflate_uint8_labels.h5");
  put(f, "/features", H5T_NATIVE_FLOAT, 2, x2, x, 1);
  put(f, "/labels", H5T_NATIVE_UINT8, 1, y1, yb, 1);
  H5Fclose(f);

  f = create(dir, "rank3_double_2d_labels.h5");
  put(f, "/features", H5T_NATIVE_DOUBLE, 3, x3, xd, 0);
  put(f, "/labels", H5T_NATIVE_FLOAT, 2, y2, y, 0);
  H5Fclose(f);

  /* Declares a million rows it never wrote (they read as the fill value): must be rejected, not
   * allocated. */
  f = create(dir, "unwritten_huge.h5");
  put(f, "/features", H5T_NATIVE_FLOAT, 2, big, NULL, 1);
  put(f, "/labels", H5T_NATIVE_FLOAT, 1, big, NULL, 1);
  H5Fclose(f);

  f = create(dir, "missing_labels.h5");
  put(f, "/features", H5T_NATIVE_FLOAT, 2, x2, x, 0);
  H5Fclose(f);
  return 0;
}
