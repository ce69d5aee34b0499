#!/usr/bin/env python3
"""Tests of cmake/check_layers.py: the source tree passes, and every kind of dependency that
points the wrong way, planted in a copy of the tree, fails the check with the file and line named.

usage: check_layers_test.py CHECK_LAYERS_PY SOURCE_ROOT
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

CHECK, ROOT = sys.argv[1], sys.argv[2]


class CheckLayersTest(unittest.TestCase):
    def setUp(self):
        self.tree = tempfile.mkdtemp(prefix="check-layers-")
        for top in ("proto", "server", "client"):
            shutil.copytree(os.path.join(ROOT, top), os.path.join(self.tree, top))

    def tearDown(self):
        shutil.rmtree(self.tree)

    def run_check(self, root=None):
        result = subprocess.run([sys.executable, CHECK, root or self.tree],
                                capture_output=True, text=True, check=False)
        return result.returncode, result.stdout + result.stderr

    def plant(self, relpath, text):
        """Appends `text` to the file (made if absent); returns the number of its first line."""
        path = os.path.join(self.tree, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lines = 0
        if os.path.exists(path):
            with open(path, encoding="utf-8") as existing:
                lines = existing.read().count("\n")
        with open(path, "a", encoding="utf-8") as out:
            out.write(text)
        return lines + 1

    def assert_refused(self, *needles):
        code, output = self.run_check()
        self.assertEqual(code, 1, output)
        for needle in needles:
            self.assertIn(needle, output)

    def test_the_tree_passes(self):
        code, output = self.run_check()
        self.assertEqual(code, 0, output)
        self.assertIn("every dependency points down", output)

    def test_an_include_of_a_higher_layer_is_refused(self):
        line = self.plant("server/io/float16.cc", '#include "server/rpc/grpc_status.h"\n')
        self.assert_refused(f"server/io/float16.cc:{line}:", "server/rpc/grpc_status.h")

    def test_serving_may_not_include_build(self):
        line = self.plant("server/serving/blend.h", '#include "server/build/index_builder.h"\n')
        self.assert_refused(f"server/serving/blend.h:{line}:", "layer server/build")

    def test_faiss_outside_its_adapter_is_refused(self):
        line = self.plant("server/serving/retriever.cc", "#include <faiss/Index.h>\n")
        self.assert_refused(f"server/serving/retriever.cc:{line}:", "faiss is for")

    def test_grpc_below_the_rpc_layer_is_refused(self):
        line = self.plant("server/build/index_builder.cc", '#include "grpcpp/grpcpp.h"\n')
        self.assert_refused(f"server/build/index_builder.cc:{line}:", "gRPC is for")

    def test_the_core_may_not_include_the_grpc_stubs(self):
        line = self.plant("server/serving/retriever.h", '#include "timbre/v1/timbre.grpc.pb.h"\n')
        self.assert_refused(f"server/serving/retriever.h:{line}:", "layer stubs")

    def test_the_client_may_not_include_the_server(self):
        line = self.plant("client/timbre_client.cc", '#include "server/serving/blend.h"\n')
        self.assert_refused(f"client/timbre_client.cc:{line}:", "layer server/serving")

    def test_a_link_to_a_higher_layer_is_refused(self):
        line = self.plant("server/serving/CMakeLists.txt",
                          "target_link_libraries(timbre_serving PRIVATE timbre_rpc)\n")
        self.assert_refused(f"server/serving/CMakeLists.txt:{line}:", "may not link timbre_rpc")

    def test_a_grpc_link_in_the_messages_is_refused(self):
        line = self.plant("proto/CMakeLists.txt",
                          "target_link_libraries(timbre_proto PUBLIC gRPC::grpc++)\n")
        self.assert_refused(f"proto/CMakeLists.txt:{line}:", "may not link gRPC::grpc++")

    def test_a_folder_outside_the_layers_is_refused(self):
        self.plant("server/misc/thing.cc", "int x;\n")
        self.assert_refused("server/misc/thing.cc: its folder is no layer")

    def test_a_missing_root_is_a_usage_error(self):
        code, output = self.run_check(os.path.join(self.tree, "missing"))
        self.assertEqual(code, 2)
        self.assertIn("usage: check_layers.py ROOT", output)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
