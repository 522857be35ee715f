// Seeded uniform [-1, 1) floats for the kernel tests of this folder.
#pragma once

#include <random>
#include <vector>

inline std::vector<float> Random(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}
