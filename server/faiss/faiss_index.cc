#include "server/faiss/faiss_index.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPQFastScan.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/VectorTransform.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/OnDiskInvertedLists.h>

#include "absl/strings/str_cat.h"
#include "server/faiss/faiss_call.h"
#include "server/faiss/faiss_index_probe.h"
#include "server/faiss/faiss_list_id.h"
#include "server/faiss/faiss_pruned_coarse_step.h"
#include "server/faiss/faiss_pruned_list_scan.h"
#include "server/faiss/faiss_sq8_scan.h"
#include "server/io/vectors_file.h"


namespace timbre {
namespace {

using faiss_idx = faiss::Index::idx_t;

// ---- Structure ---------------------------------------------------------------------------------

// M of an HNSW graph: level 0 has 2 * M neighbours, the levels above M.
int HnswM(const faiss::IndexHNSW& index) { return index.hnsw.nb_neighbors(1); }

std::string DescribeTransform(const faiss::VectorTransform* transform) {
  if (dynamic_cast<const faiss::PCAMatrix*>(transform))
    return absl::StrCat("PCA", transform->d_out);
  if (dynamic_cast<const faiss::OPQMatrix*>(transform))
    return absl::StrCat("OPQ", transform->d_out);
  return "(transform)";
}

// The name of scalar codes: index_factory's ("SQ8", "SQfp16"), or one in its style for the types
// it cannot build ("SQ8_uniform").
std::string DescribeScalarCodes(faiss::ScalarQuantizer::QuantizerType type) {
  using Sq = faiss::ScalarQuantizer;
  switch (type) {
    case Sq::QT_8bit: return "SQ8";
    case Sq::QT_4bit: return "SQ4";
    case Sq::QT_6bit: return "SQ6";
    case Sq::QT_fp16: return "SQfp16";
    case Sq::QT_8bit_uniform: return "SQ8_uniform";
    case Sq::QT_4bit_uniform: return "SQ4_uniform";
    case Sq::QT_8bit_direct: return "SQ8_direct";
  }
  return "SQ(other)";
}

std::string DescribeIndex(const faiss::Index* index) {
  if (auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
    std::string chain;
    for (const faiss::VectorTransform* transform : pre->chain) {
      absl::StrAppend(&chain, DescribeTransform(transform), ",");
    }
    return chain + DescribeIndex(pre->index);
  }
  if (auto* refine = dynamic_cast<const faiss::IndexRefine*>(index)) {
    const bool flat = dynamic_cast<const faiss::IndexFlat*>(refine->refine_index) != nullptr;
    return absl::StrCat(DescribeIndex(refine->base_index), flat ? ",RFlat" : ",Refine");
  }
  if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    std::string coarse = absl::StrCat("IVF", ivf->nlist);
    if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(ivf->quantizer)) {
      absl::StrAppend(&coarse, "_HNSW", HnswM(*hnsw));
    }
    if (dynamic_cast<const faiss::IndexIVFFlat*>(index)) return coarse + ",Flat";
    if (auto* fs = dynamic_cast<const faiss::IndexIVFPQFastScan*>(index)) {
      return absl::StrCat(coarse, ",PQ", fs->pq.M, "x", fs->pq.nbits, "fs");
    }
    if (auto* pq = dynamic_cast<const faiss::IndexIVFPQ*>(index)) {
      return absl::StrCat(coarse, ",PQ", pq->pq.M, "x", pq->pq.nbits);
    }
    if (auto* sq = dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(index)) {
      return absl::StrCat(coarse, ",", DescribeScalarCodes(sq->sq.qtype));
    }
    return coarse + ",(other)";
  }
  if (dynamic_cast<const faiss::IndexFlat*>(index)) return "Flat";
  if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index)) {
    return absl::StrCat("HNSW", HnswM(*hnsw));
  }
  if (auto* fs = dynamic_cast<const faiss::IndexPQFastScan*>(index)) {
    return absl::StrCat("PQ", fs->pq.M, "x", fs->pq.nbits, "fs");
  }
  if (auto* pq = dynamic_cast<const faiss::IndexPQ*>(index)) {
    return absl::StrCat("PQ", pq->pq.M, "x", pq->pq.nbits);
  }
  if (auto* sq = dynamic_cast<const faiss::IndexScalarQuantizer*>(index)) {
    return DescribeScalarCodes(sq->sq.qtype);
  }
  return "(unknown)";
}

int64_t EstimateBytes(const faiss::Index* index) {
  if (auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
    int64_t bytes = EstimateBytes(pre->index);
    for (const faiss::VectorTransform* transform : pre->chain) {
      if (auto* linear = dynamic_cast<const faiss::LinearTransform*>(transform)) {
        bytes += static_cast<int64_t>((linear->A.size() + linear->b.size()) * sizeof(float));
      }
      if (auto* pca = dynamic_cast<const faiss::PCAMatrix*>(transform)) {
        bytes += static_cast<int64_t>(
            (pca->mean.size() + pca->eigenvalues.size() + pca->PCAMat.size()) * sizeof(float));
      }
    }
    return bytes;
  }
  if (auto* refine = dynamic_cast<const faiss::IndexRefine*>(index)) {
    return EstimateBytes(refine->base_index) + EstimateBytes(refine->refine_index);
  }
  if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    int64_t bytes = EstimateBytes(ivf->quantizer);
    // Memory-mapped lists live in the page cache, not the heap (see mapped_bytes()).
    if (dynamic_cast<const faiss::OnDiskInvertedLists*>(ivf->invlists) != nullptr) return bytes;
    for (size_t list = 0; list < ivf->nlist; ++list) {
      bytes += static_cast<int64_t>(ivf->invlists->list_size(list)) *
               static_cast<int64_t>(ivf->code_size + sizeof(faiss_idx));
    }
    return bytes;
  }
  if (auto* flat = dynamic_cast<const faiss::IndexFlat*>(index)) {
    return static_cast<int64_t>(flat->codes.size());
  }
  if (auto* sq = dynamic_cast<const faiss::IndexScalarQuantizer*>(index)) {
    return static_cast<int64_t>(sq->codes.size());
  }
  return index->ntotal * static_cast<int64_t>(index->d * sizeof(float));
}

// True if `index` keeps the added vectors as raw floats, so that reconstruction is exact.
bool HoldsRawVectors(const faiss::Index* index) {
  if (dynamic_cast<const faiss::IndexFlat*>(index) != nullptr ||
      dynamic_cast<const faiss::IndexIVFFlat*>(index) != nullptr) {
    return true;
  }
  auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index);
  return hnsw != nullptr && dynamic_cast<const faiss::IndexFlat*>(hnsw->storage) != nullptr;
}

// A mapped file's lists must lie inside it: faiss does not check, and touching a page past the
// end of a truncated file would kill the process (SIGBUS). Also turns off faiss's prefetch
// threads, which faiss::IndexIVF::search would otherwise start on every call.
absl::Status CheckMappedLists(faiss::OnDiskInvertedLists& lists) {
  const size_t entry_bytes = lists.code_size + sizeof(faiss_idx);
  for (size_t list = 0; list < lists.nlist; ++list) {
    const faiss::OnDiskOneList& extent = lists.lists[list];
    // Compared without the product, which a hostile size would make wrap around.
    if (extent.offset > lists.totsize ||
        extent.size > (lists.totsize - extent.offset) / entry_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the file is truncated: inverted list ", list, " ends at byte ",
          extent.offset + extent.size * entry_bytes, " of a ", lists.totsize, "-byte file"));
    }
  }
  lists.prefetch_nthread = 0;
  return absl::OkStatus();
}

// faiss's reader takes each part's dimensions from the file without checking that the parts fit
// together; a search through parts that do not would read past their arrays.
absl::Status CheckTransforms(const faiss::IndexPreTransform& pre) {
  int64_t dim = pre.d;
  for (const faiss::VectorTransform* transform : pre.chain) {
    const auto* linear = dynamic_cast<const faiss::LinearTransform*>(transform);
    if (linear == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the index's ", DescribeTransform(transform),
          " transform is not supported; linear ones (PCA, OPQ, rotations) are"));
    }
    const int64_t in = linear->d_in, out = linear->d_out;
    if (in != dim || out <= 0 || !linear->is_trained ||
        static_cast<int64_t>(linear->A.size()) != in * out ||
        (linear->have_bias && static_cast<int64_t>(linear->b.size()) != out)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the index's ", DescribeTransform(transform), " transform is malformed: it maps ", in,
          " to ", out, " dimensions after ", dim, ", with a ", linear->A.size(), "-value matrix"));
    }
    dim = out;
  }
  if (pre.index->d != dim) {
    return absl::InvalidArgumentError(absl::StrCat("the index's transforms output ", dim,
                                                   " dimensions but its index takes ",
                                                   pre.index->d));
  }
  return absl::OkStatus();
}

// The scalar quantizer's own dimension, code size and trained ranges, which faiss's reader takes
// from the file, against the index it codes for.
absl::Status CheckScalarCodes(const faiss::ScalarQuantizer& sq, int64_t dim, size_t code_size) {
  using Sq = faiss::ScalarQuantizer;
  size_t ranges = 0;  // QT_fp16 and QT_8bit_direct need none
  if (sq.qtype == Sq::QT_8bit || sq.qtype == Sq::QT_4bit || sq.qtype == Sq::QT_6bit) {
    ranges = 2 * static_cast<size_t>(dim);
  } else if (sq.qtype == Sq::QT_8bit_uniform || sq.qtype == Sq::QT_4bit_uniform) {
    ranges = 2;
  }
  if (static_cast<int64_t>(sq.d) != dim || sq.code_size != code_size ||
      sq.trained.size() != ranges) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the index's scalar quantizer does not match it: ", sq.d, " dimensions and ", sq.code_size,
        "-byte codes with ", sq.trained.size(), " trained values, for an index of ", dim,
        " dimensions and ", code_size, "-byte codes"));
  }
  return absl::OkStatus();
}

absl::Status CheckQuantizer(const faiss::IndexIVF& ivf) {
  const faiss::Index* quantizer = ivf.quantizer;
  if (quantizer == nullptr || quantizer->d != ivf.d ||
      (dynamic_cast<const faiss::IndexFlat*>(quantizer) != nullptr &&
       quantizer->ntotal != static_cast<faiss_idx>(ivf.nlist))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the index's coarse quantizer does not match its ", ivf.nlist, " lists of ", ivf.d,
        " dimensions (it holds ", quantizer == nullptr ? 0 : quantizer->ntotal, " centroids of ",
        quantizer == nullptr ? 0 : quantizer->d, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

FaissIndex::FaissIndex(std::unique_ptr<faiss::Index> index) : index_(std::move(index)) {}

FaissIndex::~FaissIndex() = default;

absl::StatusOr<std::unique_ptr<FaissIndex>> FaissIndex::Load(const std::string& path,
                                                             const IndexLoadOptions& options) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    return absl::NotFoundError(absl::StrCat("index file '", path, "': ", std::strerror(errno)));
  }
  // faiss would wait for ever on a FIFO and read a device without end.
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("index file '", path, "' is not a regular file"));
  }
  if (options.probe_in_child) {
    IndexProbeOptions probe;
    probe.mmap = options.mmap;
    probe.vectors_path = options.vectors_path;
    if (absl::Status probed = ProbeFaissIndexFile(path, probe); !probed.ok()) return probed;
  }
  std::unique_ptr<faiss::Index> raw;
  absl::Status read = CallFaiss(absl::StrCat("index file '", path, "' is not a readable faiss index"),
                                absl::StatusCode::kInvalidArgument, nullptr, [&] {
                                  raw.reset(faiss::read_index(
                                      path.c_str(), options.mmap ? faiss::IO_FLAG_MMAP : 0));
                                });
  if (!read.ok()) return read;
  std::unique_ptr<FaissIndex> index(new FaissIndex(std::move(raw)));
  absl::Status prepared = index->Prepare(options);
  if (!prepared.ok()) {
    return absl::Status(prepared.code(), absl::StrCat("index file '", path, "': ", prepared.message()));
  }
  return index;
}

absl::StatusOr<std::unique_ptr<FaissIndex>> FaissIndex::Train(const TrainOptions& options,
                                                              const float* vectors,
                                                              int64_t count, int dim,
                                                              BuildControl* control) {
  const std::string context =
      absl::StrCat("training '", options.description, "' on ", count, " vectors of dim ", dim);
  if (dim < 1 || count < 1 || vectors == nullptr || options.nprobe < 1 ||
      options.add_batch < 1 || options.k_factor < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": needs dim >= 1, vectors >= 1, nprobe >= 1 (is ", options.nprobe,
        "), add_batch >= 1 (is ", options.add_batch, ") and k_factor >= 0 (is ",
        options.k_factor, ")"));
  }
  std::unique_ptr<faiss::Index> raw;
  const faiss::MetricType metric =
      options.metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
  absl::Status made = CallFaiss(context, absl::StatusCode::kInvalidArgument, nullptr, [&] {
    raw.reset(faiss::index_factory(dim, options.description.c_str(), metric));
  });
  if (!made.ok()) return made;
  auto* refine = dynamic_cast<faiss::IndexRefine*>(raw.get());
  if (refine != nullptr && options.k_factor > 0) refine->k_factor = options.k_factor;
  if (auto* ivf = faiss::ivflib::try_extract_index_ivf(refine ? refine->base_index : raw.get())) {
    ivf->nprobe = options.nprobe;
  }

  if (IsCancelled(control)) return BuildCancelledError();
  ReportProgress(control, 0.0,
                 absl::StrCat("training ", options.description, " on ", count, " vectors"));
  absl::Status trained = CallFaiss(context, absl::StatusCode::kInvalidArgument, control,
                                   [&] { raw->train(count, vectors); });
  if (!trained.ok()) return trained;
  for (int64_t start = 0; start < count; start += options.add_batch) {
    if (IsCancelled(control)) return BuildCancelledError();
    const int64_t batch = std::min(options.add_batch, count - start);
    absl::Status added = CallFaiss(context, absl::StatusCode::kInvalidArgument, control,
                                   [&] { raw->add(batch, vectors + start * dim); });
    if (!added.ok()) return added;
    ReportProgress(control, static_cast<double>(start + batch) / count,
                   absl::StrCat("added ", start + batch, " of ", count, " vectors"));
  }
  std::unique_ptr<FaissIndex> index(new FaissIndex(std::move(raw)));
  absl::Status prepared = index->Prepare(IndexLoadOptions());
  if (!prepared.ok()) return prepared;
  return index;
}

absl::Status FaissIndex::Write(const std::string& path) const {
  return CallFaiss(absl::StrCat("writing index file '", path, "'"), absl::StatusCode::kInternal,
                   nullptr, [&] { faiss::write_index(index_.get(), path.c_str()); });
}

int FaissIndex::k_factor() const {
  if (refine_ == nullptr) return 0;
  return std::max(1, static_cast<int>(std::lround(refine_->k_factor)));
}

absl::Status FaissIndex::SetSearchDefaults(int nprobe, int k_factor) {
  if (nprobe < 0 || k_factor < 0 || (nprobe > 0 && nprobe > nlist_)) {
    return absl::InvalidArgumentError(absl::StrCat("search defaults nprobe ", nprobe, ", k_factor ",
                                                   k_factor, " do not fit ", description_));
  }
  if (nprobe > 0) {
    // ivf_ points into index_, which this object owns and nobody else sees yet.
    const_cast<faiss::IndexIVF*>(ivf_)->nprobe = nprobe;
    nprobe_ = nprobe;
  }
  if (k_factor > 0 && refine_ != nullptr) {
    dynamic_cast<faiss::IndexRefine*>(index_.get())->k_factor = static_cast<float>(k_factor);
  }
  return absl::OkStatus();
}

absl::Status FaissIndex::Prepare(const IndexLoadOptions& options) {
  const std::string& vectors_path = options.vectors_path;
  if (index_->metric_type != faiss::METRIC_L2 &&
      index_->metric_type != faiss::METRIC_INNER_PRODUCT) {
    return absl::InvalidArgumentError("only L2 and inner-product indexes are supported");
  }
  absl::Status shapes = CheckShapes();
  if (!shapes.ok()) return shapes;
  FindStructure();
  if (size_ == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the index (", description_, ") holds no vectors; an RVC trained_*.index file has none, "
        "serve the added_*.index file"));
  }
  if (ivf_ != nullptr) {
    // ivf_ points into index_, which this object owns and nobody else sees yet. Mapped lists are
    // checked before anything reads them.
    if (auto* mapped = dynamic_cast<faiss::OnDiskInvertedLists*>(
            const_cast<faiss::IndexIVF*>(ivf_)->invlists)) {
      absl::Status within = CheckMappedLists(*mapped);
      if (!within.ok()) return within;
      mapped_bytes_ = static_cast<int64_t>(mapped->totsize);
    }
    absl::Status ids = CheckIvfIds();
    if (!ids.ok()) return ids;
    list_imbalance_ = ivf_->invlists->imbalance_factor();
  }
  if (!vectors_path.empty()) {
    absl::StatusOr<std::vector<float>> sidecar = ReadVectorsFile(vectors_path, size_, dim_);
    if (!sidecar.ok()) return sidecar.status();
    owned_vectors_ = *std::move(sidecar);
  }
  absl::Status mapped = MapStoredVectors(!vectors_path.empty());
  if (!mapped.ok()) return mapped;
  if (centroids_ != nullptr && options.prune_coarse_step && ivf_dim_ <= PrunedCoarseStep::kMaxDim) {
    absl::StatusOr<std::unique_ptr<PrunedCoarseStep>> pruned =
        PrunedCoarseStep::Create(centroids_, nlist_, ivf_dim_, metric_);
    if (!pruned.ok()) return pruned.status();
    pruned_coarse_step_ = *std::move(pruned);
  }
  if (centroids_ != nullptr) sq8_scan_ = Sq8Scan::Create(*ivf_);
  if (centroids_ != nullptr && options.prune_list_scan && !options.mmap) {
    pruned_list_scan_ = PrunedListScan::Create(*ivf_, centroids_);
  }
  memory_bytes_ =
      EstimateBytes(index_.get()) +
      static_cast<int64_t>(stored_.size() * sizeof(float*) + owned_vectors_.size() * sizeof(float) +
                           centroid_norms_.size() * sizeof(float)) +
      (pruned_coarse_step_ != nullptr ? pruned_coarse_step_->memory_bytes() : 0) +
      (sq8_scan_ != nullptr ? sq8_scan_->memory_bytes() : 0) +
      (pruned_list_scan_ != nullptr ? pruned_list_scan_->memory_bytes() : 0);
  return absl::OkStatus();
}

absl::Status FaissIndex::CheckShapes() const {
  const faiss::Index* index = index_.get();
  if (auto* refine = dynamic_cast<const faiss::IndexRefine*>(index)) {
    if (refine->base_index->d != refine->d || refine->refine_index->d != refine->d) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the refined index's parts take ", refine->base_index->d, " and ",
          refine->refine_index->d, " dimensions, not its ", refine->d));
    }
    index = refine->base_index;
  }
  if (auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
    absl::Status transforms = CheckTransforms(*pre);
    if (!transforms.ok()) return transforms;
    index = pre->index;
  }
  if (auto* sq = dynamic_cast<const faiss::IndexScalarQuantizer*>(index)) {
    if (sq->codes.size() != static_cast<size_t>(sq->ntotal) * sq->code_size) {
      return absl::InvalidArgumentError(absl::StrCat("the index holds ", sq->codes.size(),
                                                     " bytes of codes for ", sq->ntotal,
                                                     " vectors of ", sq->code_size, " bytes"));
    }
    return CheckScalarCodes(sq->sq, sq->d, sq->code_size);
  }
  if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    absl::Status quantizer = CheckQuantizer(*ivf);
    if (!quantizer.ok()) return quantizer;
    if (auto* sq = dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(ivf)) {
      return CheckScalarCodes(sq->sq, sq->d, sq->code_size);
    }
  }
  return absl::OkStatus();
}

void FaissIndex::FindStructure() {
  dim_ = index_->d;
  size_ = index_->ntotal;
  metric_ = index_->metric_type == faiss::METRIC_INNER_PRODUCT ? Metric::kInnerProduct
                                                                : Metric::kL2;
  description_ = DescribeIndex(index_.get());
  refine_ = dynamic_cast<const faiss::IndexRefine*>(index_.get());
  const faiss::Index* base = refine_ != nullptr ? refine_->base_index : index_.get();
  pretransform_ = dynamic_cast<const faiss::IndexPreTransform*>(base);
  ivf_ =
      dynamic_cast<const faiss::IndexIVF*>(pretransform_ != nullptr ? pretransform_->index : base);
  if (ivf_ == nullptr) {
    pretransform_ = nullptr;  // other indexes behind a transform are searched by faiss
    return;
  }
  ivf_dim_ = static_cast<int>(ivf_->d);
  nprobe_ = static_cast<int>(ivf_->nprobe);
  nlist_ = static_cast<int>(ivf_->nlist);
  fixed_nprobe_ = dynamic_cast<const faiss::IndexIVFFastScan*>(ivf_) != nullptr;
  auto* flat = dynamic_cast<const faiss::IndexFlat*>(ivf_->quantizer);
  if (!fixed_nprobe_ && flat != nullptr && flat->metric_type == ivf_->metric_type &&
      flat->ntotal == static_cast<faiss_idx>(ivf_->nlist)) {
    centroids_ = flat->get_xb();
    centroid_norms_.resize(nlist_);
    for (int c = 0; c < nlist_; ++c) {
      const float* centroid = centroids_ + static_cast<int64_t>(c) * ivf_dim_;
      float norm = 0.0f;
      for (int j = 0; j < ivf_dim_; ++j) norm += centroid[j] * centroid[j];
      centroid_norms_[c] = norm;
    }
  }
}

absl::Status FaissIndex::CheckIvfIds() const {
  // ntotal is a field of the file: check it against the lists before allocating by it, or a
  // small hostile file makes the server allocate ntotal / 8 bytes.
  size_t listed = 0;
  for (size_t list = 0; list < ivf_->nlist; ++list) listed += ivf_->invlists->list_size(list);
  if (size_ < 0 || listed != static_cast<size_t>(size_)) {
    return absl::InvalidArgumentError(absl::StrCat("the index claims ", size_,
                                                   " vectors but its inverted lists hold ", listed));
  }
  // faiss's legacy formats ("IvFL", "IvSQ", ...) read a list's ids and codes as two vectors of
  // any lengths; every scan reads list_size codes.
  if (auto* array = dynamic_cast<const faiss::ArrayInvertedLists*>(ivf_->invlists)) {
    for (size_t list = 0; list < ivf_->nlist; ++list) {
      if (array->codes[list].size() != array->ids[list].size() * array->code_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the index's list ", list, " holds ", array->ids[list].size(), " ids but ",
            array->codes[list].size(), " bytes of codes (", array->code_size, " per vector)"));
      }
    }
  }
  std::vector<bool> seen(size_, false);
  for (size_t list = 0; list < ivf_->nlist; ++list) {
    faiss::InvertedLists::ScopedIds ids(ivf_->invlists, list);
    const size_t n = ivf_->invlists->list_size(list);
    for (size_t j = 0; j < n; ++j) {
      const faiss_idx id = ListId(ids.get(), j);
      if (id < 0 || id >= size_ || seen[id]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the index has id ", id, "; only indexes with ids 0..", size_ - 1, " are supported"));
      }
      seen[id] = true;
    }
  }
  const auto missing = std::find(seen.begin(), seen.end(), false);
  if (missing != seen.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the index lacks id ", missing - seen.begin(), "; only indexes with ids 0..",
                     size_ - 1, " are supported"));
  }
  return absl::OkStatus();
}

absl::Status FaissIndex::MapStoredVectors(bool have_sidecar) {
  stored_.resize(size_);
  if (have_sidecar) {
    for (faiss_idx id = 0; id < size_; ++id) stored_[id] = owned_vectors_.data() + id * dim_;
    stores_exact_vectors_ = true;
    return absl::OkStatus();
  }
  // Without copying where the index keeps raw floats.
  const faiss::Index* exact = refine_ != nullptr ? refine_->refine_index : index_.get();
  stores_exact_vectors_ = HoldsRawVectors(exact);
  auto* ivf_flat = dynamic_cast<const faiss::IndexIVFFlat*>(exact);
  const bool array_lists =
      ivf_flat == ivf_ && ivf_flat != nullptr && ListsReadInPlace(ivf_flat->invlists);
  if (auto* flat = dynamic_cast<const faiss::IndexFlat*>(exact)) {
    for (faiss_idx id = 0; id < size_; ++id) stored_[id] = flat->get_xb() + id * dim_;
  } else if (array_lists) {
    // Ids were checked to be 0..size-1 by CheckIvfIds.
    for (size_t list = 0; list < ivf_flat->nlist; ++list) {
      const size_t n = ivf_flat->invlists->list_size(list);
      const faiss_idx* ids = ivf_flat->invlists->get_ids(list);
      const uint8_t* codes = ivf_flat->invlists->get_codes(list);
      for (size_t j = 0; j < n; ++j) {
        stored_[ListId(ids, j)] = reinterpret_cast<const float*>(codes + j * ivf_flat->code_size);
      }
    }
  } else {
    // Other structures: reconstruct every vector once (approximate for compressed codes).
    owned_vectors_.resize(static_cast<size_t>(size_) * dim_);
    absl::Status reconstructed = CallFaiss(
        absl::StrCat("index (", description_, ") cannot return its stored vectors"),
        absl::StatusCode::kInvalidArgument, nullptr,
        [&] { exact->reconstruct_n(0, size_, owned_vectors_.data()); });
    if (!reconstructed.ok()) return reconstructed;
    for (faiss_idx id = 0; id < size_; ++id) stored_[id] = owned_vectors_.data() + id * dim_;
  }
  return absl::OkStatus();
}

absl::Status FaissIndex::CheckDescription(const std::string& description, int dim,
                                          Metric metric) {
  return CallFaiss(absl::StrCat("index_factory string '", description, "' for dim ", dim),
                   absl::StatusCode::kInvalidArgument, /*control=*/nullptr, [&] {
                      std::unique_ptr<faiss::Index> index(faiss::index_factory(
                          dim, description.c_str(),
                          metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT));
                    });
}

}  // namespace timbre
