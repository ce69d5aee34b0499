// The BLAS routine the faiss adapter's search files call directly, declared as faiss itself
// declares it (Fortran BLAS, no header needed; linked through faiss's BLAS).
#ifndef TIMBRE_SERVER_FAISS_FAISS_BLAS_H_
#define TIMBRE_SERVER_FAISS_FAISS_BLAS_H_

extern "C" {
int sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
           const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
           const float* beta, float* c, const int* ldc);
}

#endif  // TIMBRE_SERVER_FAISS_FAISS_BLAS_H_
