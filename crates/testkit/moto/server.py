"""moto's EC2 server for rollcall's tests, with a control endpoint beside it.

moto (PyPI `moto[server]`) serves the EC2 API but has no API for scheduled events, so
this process starts moto's ThreadedMotoServer and, in the same process, a small HTTP
control endpoint that reaches into moto's backend:

  POST /events  {"region", "instance", "events": [{"id", "code", "description",
                 "not_before", "not_after", "deadline"}]}   replace the instance's
                 scheduled events (times: Unix seconds or null; [] clears them)
  POST /status  {"region", "instance", "instance": "ok|impaired|...", "system": ...}
                 override the status checks moto reports (null: moto's own again)
  GET  /reboots {"i-...": n}: RebootInstances calls per instance
  POST /hook    {"command": "..."}: run `sh -c COMMAND rollcall-hook INSTANCE` on every
                 reboot of an instance (null: none)
  POST /auth    {}: from now on every request must be signed with an IAM user's key, and
                 moto checks the signature (botocore's SigV4 signer recomputes it);
                 answers that user's {"access_key_id", "secret_access_key"}

On start it prints one line, `ready MOTO_PORT CONTROL_PORT`, and serves until killed.
Started by rollcall_testkit::moto.
"""

import datetime
import json
import logging
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from moto import settings
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.iam.models import iam_backends
from moto.server import ThreadedMotoServer

LOCK = threading.Lock()
REBOOTS = {}
STATUS = {}  # instance id -> {"instance": str|None, "system": str|None}
HOOK = {"command": None}

_reboot = InstanceBackend.reboot_instances


def reboot_instances(self, instance_ids):
    done = _reboot(self, instance_ids)
    for inst in done:
        with LOCK:
            REBOOTS[inst.id] = REBOOTS.get(inst.id, 0) + 1
            hook = HOOK["command"]
        if hook:
            subprocess.Popen(["sh", "-c", hook, "rollcall-hook", inst.id])
    return done


InstanceBackend.reboot_instances = reboot_instances


def checked(kind, original):
    def get(self):
        with LOCK:
            over = STATUS.get(self.id, {}).get(kind)
        if over is None:
            return original.fget(self)
        return {"Details": [{"Name": "reachability", "Status": "passed" if over == "ok" else "failed"}],
                "Status": over}
    return property(get)


Instance.instance_status = checked("instance", Instance.instance_status)
Instance.system_status = checked("system", Instance.system_status)


def when(t):
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(int(t), tz=datetime.timezone.utc)


def instance(body):
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][body["region"]]
    return backend.get_instance(body["instance"])


def set_events(body):
    inst = instance(body)
    events = []
    for e in body["events"]:
        ev = {"InstanceEventId": e["id"], "Code": e["code"], "Description": e.get("description", "")}
        for key, field in (("NotBefore", "not_before"), ("NotAfter", "not_after"),
                           ("NotBeforeDeadline", "deadline")):
            if e.get(field) is not None:
                ev[key] = when(e[field])
        events.append(ev)
    inst.events = events


def set_status(body):
    instance(body)  # the instance must exist
    with LOCK:
        STATUS[body["instance"]] = {"instance": body.get("instance_check"),
                                    "system": body.get("system_check")}


def require_auth():
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    if "rollcall" not in iam.users:
        iam.create_user("us-east-1", "rollcall")
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}
        iam.put_user_policy("rollcall", "ec2", json.dumps(policy))
    key = iam.create_access_key("rollcall")
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    return {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}


class Control(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/reboots":
            with LOCK:
                return self.answer(200, dict(REBOOTS))
        self.answer(404, {"error": f"no {self.path}"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
            if self.path == "/events":
                set_events(body)
            elif self.path == "/status":
                set_status(body)
            elif self.path == "/hook":
                with LOCK:
                    HOOK["command"] = body.get("command")
            elif self.path == "/auth":
                return self.answer(200, require_auth())
            else:
                return self.answer(404, {"error": f"no {self.path}"})
        except Exception as e:  # the test sees what went wrong
            return self.answer(400, {"error": f"{type(e).__name__}: {e}"})
        self.answer(200, {"ok": True})


def main():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    _, moto_port = moto.get_host_and_port()
    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    print(f"ready {moto_port} {control.server_address[1]}", flush=True)
    control.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
