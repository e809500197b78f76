// The lifecycle tests' fixture and the tcp-echo service they apply: 0.0.0.0:31400 split 50/50
// over 127.0.0.1:9001 (v1) and 127.0.0.1:9002 (v2).
#pragma once

#include <string>

#include "netns_fixture.h"
#include "dataplane/pins.h"

namespace tcpshift::testing {

class LifecycleTest : public NetnsTest {
   protected:
    // The namespace's pin directory.
    std::string pins() { return pin_dir(netns_inode()); }
};

inline constexpr const char* kConfig = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata:
  name: tcp-echo
spec:
  listen: ["0.0.0.0:31400"]
  subsets:
  - name: v1
    weight: 50
    backends: ["127.0.0.1:9001"]
  - name: v2
    weight: 50
    backends: ["127.0.0.1:9002"]
)";

}  // namespace tcpshift::testing
