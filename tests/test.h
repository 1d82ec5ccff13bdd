/* test.h - the tiny shared test helper: CHECK macros, SKIP, and a summary line
 * "N passed, N failed" printed by test_done(), which returns the exit status. */
#ifndef TEST_H
#define TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_passed_, test_failed_, test_skipped_;

#define CHECK(cond) do { \
    if (cond) test_passed_++; \
    else { test_failed_++; fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_MSG(cond, ...) do { \
    if (cond) test_passed_++; \
    else { test_failed_++; fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

#define CHECK_EQ(a, b) do { \
    long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ == b_) test_passed_++; \
    else { test_failed_++; fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", \
                                   __FILE__, __LINE__, #a, #b, a_, b_); } \
} while (0)

#define CHECK_NEAR(a, b, tol) do { \
    double a_ = (double)(a), b_ = (double)(b); \
    if (fabs(a_ - b_) <= (tol)) test_passed_++; \
    else { test_failed_++; fprintf(stderr, "FAIL %s:%d: %s ~ %s (%g vs %g, tol %g)\n", \
                                   __FILE__, __LINE__, #a, #b, a_, b_, (double)(tol)); } \
} while (0)

#define SKIP(...) do { test_skipped_++; fprintf(stderr, "SKIP: "); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } while (0)

static inline int test_done(void) {
    if (test_skipped_) printf("%d passed, %d failed, %d skipped\n", test_passed_, test_failed_, test_skipped_);
    else printf("%d passed, %d failed\n", test_passed_, test_failed_);
    return test_failed_ ? 1 : 0;
}

#endif
