"""Everything the tests share: the Kubernetes API emulator and the recording backend
(fakes/), the servo and webhook harnesses, page kits, cgroup trees and the monitor's fakes."""
