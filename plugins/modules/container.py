#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation only: the action plugin of the same name does the work.

from __future__ import annotations

DOCUMENTATION = r"""
module: container
short_description: Run a container with community.docker.docker_container, without a module run when nothing differs
version_added: 0.1.0
description:
  - Takes the options of M(community.docker.docker_container) and gives them to it, with one label added,
    C(switchboard.config-hash), the digest of all the other options.
  - Before that, one C(docker inspect) on the host (a shell command, not a module run) reads the
    container and the image its O(community.docker.docker_container#module:image) names now. When the container
    carries the same digest, runs, runs that image, has the restart policy the options ask for and is attached to
    their networks, nothing differs, and the module does not run. The result is then the one
    M(community.docker.docker_container) gives when it finds nothing to do, C(changed=false) and RV(container).
  - Anything else goes to the module, which compares and changes as it always does, including check mode and
    diff. Always so with O(community.docker.docker_container#module:state) other than V(started), with
    O(community.docker.docker_container#module:restart) or O(community.docker.docker_container#module:recreate),
    with a pull each time (O(community.docker.docker_container#module:pull) true or V(always)), with
    O(community.docker.docker_container#module:detach=false), with the options of another Docker daemon, and with
    the resource limits C(docker update) can change on a running container.
  - A change of any option gives another digest, so the module recreates the container, also where it could
    have changed it in place. The first run with this module recreates each container once, to add the label.
  - This is how Docker Compose finds the services it need not touch (its C(com.docker.compose.config-hash) label).
author:
  - Switchboard developers (@switchboard)
extends_documentation_fragment:
  - switchboard.matrix._attributes
attributes:
  check_mode:
    support: full
    details:
      - The inspection only reads; the module runs in check mode.
  diff_mode:
    support: full
    details:
      - As M(community.docker.docker_container). A container left alone has no diff.
  idempotent:
    support: full
options: {}
notes:
  - Takes every option of M(community.docker.docker_container) as it is; see its documentation.
  - Runs C(docker) on the host with the task's privileges, so the host needs the Docker command line (the docker
    role installs it). Where the command is missing or does not answer, the module runs.
  - Changes made to a container by hand that the inspection does not read (C(docker update) of a resource limit
    not among the options, a file changed inside the container) are not seen.
seealso:
  - module: community.docker.docker_container
"""

EXAMPLES = r"""
- name: Run the Synapse container; a second run finds it as it is and runs no module
  switchboard.matrix.container:
    name: matrix-synapse
    image: local/synapse:1.0
    user: "991:991"
    networks:
      - name: matrix
    networks_cli_compatible: true
    restart_policy: unless-stopped
    state: started
"""

RETURN = r"""
container:
  description:
    - The container's inspect document, as M(community.docker.docker_container) returns it.
  returned: success; not in check mode when the container would be created
  type: dict
  sample: {"Id": "0123456789ab", "State": {"Running": true, "Status": "running"}}
"""
