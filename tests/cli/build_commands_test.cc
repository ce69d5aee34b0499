#include "client/cli/build_commands.h"

#include <string>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

timbre::v1::BuildJob AutoJob(double rvc_unpruned_ms) {
  timbre::v1::BuildJob job;
  job.set_id("job-1");
  job.set_speaker("alice");
  timbre::v1::BuildReport* report = job.mutable_report();
  report->set_min_blend_cosine(0.9997);
  report->set_max_call_ms(1.705);
  report->set_rvc_unpruned_p50_call_ms(rvc_unpruned_ms);
  timbre::v1::IndexEvaluation* rvc = report->add_candidates();
  rvc->set_description("IVF3307,Flat");
  rvc->set_nprobe(1);
  rvc->set_p50_call_ms(0.331);
  timbre::v1::IndexEvaluation* kept = report->add_candidates();
  kept->set_description("PCA128,IVF1436,SQ8,RFlat");
  kept->set_nprobe(24);
  kept->set_p50_call_ms(1.23);
  report->set_chosen_candidate(1);
  return job;
}

TEST(ReportTextTest, AutoCandidatesShowTheTargetTheBoundAndItsReference) {
  const std::string text = ReportText(AutoJob(1.705));
  EXPECT_THAT(text, HasSubstr("candidates (target: mean blend cosine >= 0.9997, p50 <= 1.705 ms; "
                              "RVC's recipe without the pruned steps: p50 1.705 ms):"));
  EXPECT_THAT(text, HasSubstr("  * PCA128,IVF1436,SQ8,RFlat"));
  EXPECT_THAT(text, HasSubstr("    IVF3307,Flat"));
}

TEST(ReportTextTest, AReportWithoutTheReferenceDoesNotShowOne) {
  // Servers before the field leave it 0.
  const std::string text = ReportText(AutoJob(0));
  EXPECT_THAT(text,
              HasSubstr("candidates (target: mean blend cosine >= 0.9997, p50 <= 1.705 ms):"));
  EXPECT_THAT(text, Not(HasSubstr("without the pruned steps")));
}

}  // namespace
}  // namespace timbre
