#!/usr/bin/env python3
"""The plan-quality oracle: the exact optimum of small fleets, by OR-Tools CP-SAT.

    oracle.py [--time-limit S] PLAN.json ...

Each PLAN.json is `rollcall plan --json` of a fleet (schema rollcall.plan/v1). The oracle
rebuilds the planner's rules from the document alone, independently of rollcall's code:

- each cluster's limit from its budget, size, load and max_load (k members out only while
  load*n/(n-k) <= max_load), a zone budget as "at most z zones with members out";
- max_concurrent over the fleet, max_concurrent_per_region per region;
- serial regions one after another in the document's order, parallel ones together;
- no reboot before earliest_start (times are offsets from it); steps last their duration.

It schedules the hosts rollcall scheduled (blocked hosts are out of both), checks that
rollcall's own schedule satisfies the model, proves the optimal makespan within the time
limit, and prints one JSON object per plan on stdout, then a summary object:
{"summary": {...}}. Fleets with maintenance windows are refused (not modelled).
"""

import json
import math
import sys
from datetime import datetime, timezone

from ortools.sat.python import cp_model


def secs(t):
    return int(datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def survivor_limit(n, load, max_load):
    k = 0
    while k + 1 < n and load * n / (n - (k + 1)) <= max_load + 1e-9:
        k += 1
    return k


def cluster_limit(c):
    """(most members out, zone budget or None), from the cluster's own figures."""
    n = c["members"]
    load_limit = survivor_limit(n, c["load"], c["max_load"])
    budget = c["budget"]
    if "nodes" in budget:
        nodes, zones = min(budget["nodes"], load_limit), None
    else:
        nodes, zones = load_limit, budget["zones"]
    if nodes == 0 and c.get("allow_outage"):
        nodes = min(budget["nodes"], n) if "nodes" in budget else n
    return nodes, zones


class Instance:
    """The scheduled hosts of one plan document, in time units of the durations' gcd."""

    def __init__(self, doc):
        if doc.get("windows"):
            raise ValueError("maintenance windows are not modelled by the oracle")
        t0 = secs(doc["earliest_start"])
        self.doc = doc
        self.hosts = [s["host"] for s in doc["steps"]]
        starts = [secs(s["start"]) - t0 for s in doc["steps"]]
        durs = [secs(s["end"]) - secs(s["start"]) for s in doc["steps"]]
        self.unit = 0
        for x in durs + starts:
            self.unit = math.gcd(self.unit, x)
        self.unit = max(self.unit, 1)
        self.dur = [d // self.unit for d in durs]
        self.rollcall = [s // self.unit for s in starts]
        self.region = [s["region"] for s in doc["steps"]]
        self.zone = [s["zone"] for s in doc["steps"]]
        self.clusters = {c["id"]: c for c in doc["clusters"]}
        self.members = {}
        for i, s in enumerate(doc["steps"]):
            for c in s["clusters"]:
                self.members.setdefault(c, []).append(i)
        self.order = [r["name"] for r in doc["regions"]]


class Model:
    """The CP-SAT model of one instance; `fixed` pins every start (a feasibility check)."""

    def __init__(self, inst, horizon, fixed=None, objective=True):
        self.inst = inst
        m = self.m = cp_model.CpModel()
        n = len(inst.dur)
        self.s = []
        for i in range(n):
            lo, hi = (fixed[i], fixed[i]) if fixed else (0, max(0, horizon - inst.dur[i]))
            self.s.append(m.NewIntVar(lo, hi, f"s{i}"))
        self.iv = [m.NewFixedSizeIntervalVar(self.s[i], inst.dur[i], f"i{i}") for i in range(n)]
        hi = max([horizon] + [(fixed[i] + inst.dur[i]) for i in range(n)] if fixed else [horizon])
        self.mk = m.NewIntVar(0, hi, "makespan")
        for i in range(n):
            m.Add(self.mk >= self.s[i] + inst.dur[i])
        self.clusters()
        self.concurrency()
        self.regions(hi)
        if objective:
            m.Minimize(self.mk)

    def clusters(self):
        inst = self.inst
        for cid, idx in inst.members.items():
            nodes, zones = cluster_limit(inst.clusters[cid])
            if nodes == 0:
                raise ValueError(f"{cid}: rollcall scheduled members but its limit is 0")
            self.cumulative(idx, nodes)
            if zones is not None:
                self.zone_budget(idx, zones)

    def zone_budget(self, idx, z):
        """When member i starts, at most z zones have members out (i's own included)."""
        inst, m = self.inst, self.m
        zone_names = sorted({inst.zone[i] for i in idx})
        if len(zone_names) <= z:
            return
        for i in idx:
            active = []
            for zn in zone_names:
                if zn == inst.zone[i]:
                    continue
                outs = [self.out_at_start(j, i) for j in idx if j != i and inst.zone[j] == zn]
                a = m.NewBoolVar("")
                m.AddMaxEquality(a, outs)
                active.append(a)
            m.Add(sum(active) <= z - 1)

    def out_at_start(self, j, i):
        """A bool: host j is out at the instant host i starts (s_j <= s_i < s_j + d_j)."""
        m, d = self.m, self.inst.dur[j]
        b = m.NewBoolVar("")
        before, during = m.NewBoolVar(""), m.NewBoolVar("")
        m.Add(self.s[j] <= self.s[i]).OnlyEnforceIf(before)
        m.Add(self.s[j] > self.s[i]).OnlyEnforceIf(before.Not())
        m.Add(self.s[i] < self.s[j] + d).OnlyEnforceIf(during)
        m.Add(self.s[i] >= self.s[j] + d).OnlyEnforceIf(during.Not())
        m.AddBoolAnd([before, during]).OnlyEnforceIf(b)
        m.AddBoolOr([before.Not(), during.Not()]).OnlyEnforceIf(b.Not())
        return b

    def concurrency(self):
        inst, conc = self.inst, self.inst.doc["concurrency"]
        n = len(inst.dur)
        if conc.get("fleet") is not None:
            self.cumulative(range(n), conc["fleet"])
        if conc.get("region") is not None:
            for r in inst.order:
                self.cumulative([i for i in range(n) if inst.region[i] == r], conc["region"])

    def cumulative(self, idx, cap):
        """At most cap of the hosts idx out at once; with the energy it implies (cap times
        the makespan covers their work), stated for the solver's bound."""
        idx = list(idx)
        if len(idx) <= cap:
            return
        self.m.AddCumulative([self.iv[i] for i in idx], [1] * len(idx), cap)
        self.m.Add(cap * self.mk >= sum(self.inst.dur[i] for i in idx))

    def regions(self, hi):
        """Serial regions: each ends before the next one (in order) starts."""
        inst, m = self.inst, self.m
        if inst.doc["region_mode"] != "serial":
            return
        prev_end = None
        for r in inst.order:
            idx = [i for i in range(len(inst.dur)) if inst.region[i] == r]
            if not idx:
                continue
            start, end = m.NewIntVar(0, hi, ""), m.NewIntVar(0, hi, "")
            for i in idx:
                m.Add(start <= self.s[i])
                m.Add(end >= self.s[i] + inst.dur[i])
            if prev_end is not None:
                m.Add(prev_end <= start)
            prev_end = end


def solve(m, time_limit, hint=None):
    if hint:
        for v, x in zip(hint[0], hint[1]):
            m.m.AddHint(v, x)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 2
    solver.parameters.linearization_level = 2
    status = solver.Solve(m.m)
    return solver, status


def judge(doc, time_limit):
    inst = Instance(doc)
    out = {"fleet": doc["fleet"], "hosts": len(inst.dur), "makespan_s": doc["makespan_s"],
           "lower_bound_s": doc["lower_bound_s"]}
    if not inst.dur:
        out.update(feasible=True, proven=True, optimum_s=0, ratio=1.0, bound_ratio=1.0)
        return out
    mk = max(inst.rollcall[i] + inst.dur[i] for i in range(len(inst.dur)))
    check, st = solve(Model(inst, mk, fixed=inst.rollcall), time_limit)
    out["feasible"] = st in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    horizon = mk if out["feasible"] else sum(inst.dur)
    model = Model(inst, horizon)
    solver, st = solve(model, time_limit, hint=(model.s, inst.rollcall) if out["feasible"] else None)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        out.update(proven=False, optimum_s=None, ratio=None, bound_ratio=None)
        return out
    best = int(solver.ObjectiveValue())
    proven = st == cp_model.OPTIMAL or shorter_infeasible(inst, best, time_limit)
    best *= inst.unit
    out["proven"] = proven
    out["optimum_s"] = best
    out["solver_bound_s"] = int(solver.BestObjectiveBound()) * inst.unit
    out["ratio"] = round(doc["makespan_s"] / best, 4) if best else 1.0
    out["bound_ratio"] = round(doc["lower_bound_s"] / best, 4) if best else 1.0
    return out


def shorter_infeasible(inst, best, time_limit):
    """The decision form, time-indexed (a start bool per host and instant, whose linear
    relaxation is strong): no schedule of the same rules ends before `best`. As a check
    of the second model against the first, it must find one that ends by `best`."""
    if best <= 0:
        return True

    def status(h):
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = time_limit
        solver.parameters.num_workers = 2
        return solver.Solve(TimeIndexed(inst, h).m)

    if status(best - 1) != cp_model.INFEASIBLE:
        return False
    if status(best) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise ValueError("the time-indexed model disagrees with the interval model")
    return True


class TimeIndexed:
    """Every host starts at one instant of [0, H - d]; the rules as linear constraints
    per instant."""

    def __init__(self, inst, horizon):
        self.inst, self.h = inst, horizon
        m = self.m = cp_model.CpModel()
        n = len(inst.dur)
        self.x = [[m.NewBoolVar("") for _ in range(max(0, horizon - inst.dur[i] + 1))] for i in range(n)]
        for i in range(n):
            m.AddExactlyOne(self.x[i]) if self.x[i] else m.AddBoolOr([])
        for cid, idx in inst.members.items():
            nodes, zones = cluster_limit(inst.clusters[cid])
            self.cap(idx, nodes)
            if zones is not None:
                self.zones(idx, zones)
        conc = inst.doc["concurrency"]
        if conc.get("fleet") is not None:
            self.cap(range(n), conc["fleet"])
        if conc.get("region") is not None:
            for r in inst.order:
                self.cap([i for i in range(n) if inst.region[i] == r], conc["region"])
        if inst.doc["region_mode"] == "serial":
            self.serial()

    def out(self, i, t):
        """Host i's start bools that have it out at instant t."""
        d = self.inst.dur[i]
        return [self.x[i][u] for u in range(max(0, t - d + 1), min(t, len(self.x[i]) - 1) + 1)]

    def cap(self, idx, cap):
        idx = list(idx)
        if len(idx) <= cap:
            return
        for t in range(self.h):
            self.m.Add(sum(sum(self.out(i, t)) for i in idx) <= cap)

    def zones(self, idx, z):
        inst = self.inst
        names = sorted({inst.zone[i] for i in idx})
        if len(names) <= z:
            return
        for t in range(self.h):
            busy = []
            for zn in names:
                y = self.m.NewBoolVar("")
                for i in idx:
                    if inst.zone[i] == zn:
                        self.m.Add(sum(self.out(i, t)) <= y)
                busy.append(y)
            self.m.Add(sum(busy) <= z)

    def serial(self):
        """Each region ends before the next one (in order) starts."""
        inst, m = self.inst, self.m
        prev_end = None
        for r in inst.order:
            idx = [i for i in range(len(inst.dur)) if inst.region[i] == r]
            if not idx:
                continue
            start, end = m.NewIntVar(0, self.h, ""), m.NewIntVar(0, self.h, "")
            for i in idx:
                st = sum(u * b for u, b in enumerate(self.x[i]))
                m.Add(start <= st)
                m.Add(end >= st + inst.dur[i])
            if prev_end is not None:
                m.Add(prev_end <= start)
            prev_end = end


def quantile(xs, q):
    xs = sorted(xs)
    if not xs:
        return None
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def summary(results):
    proven = [r for r in results if r.get("proven")]
    ratios = [r["ratio"] for r in proven]
    bounds = [r["bound_ratio"] for r in proven]
    return {
        "instances": len(results),
        "proven": len(proven),
        "infeasible": [r["fleet"] for r in results if not r.get("feasible")],
        # the bound is above a proven optimum, or above any solution found
        "bound_above_optimum": [r["fleet"] for r in results if r.get("optimum_s") is not None
                                and r["lower_bound_s"] > r["optimum_s"]],
        "optimal": sum(1 for x in ratios if x <= 1.0),
        "ratio_median": quantile(ratios, 0.5),
        "ratio_p90": quantile(ratios, 0.9),
        "ratio_p99": quantile(ratios, 0.99),
        "ratio_worst": max(ratios, default=None),
        "bound_median": quantile(bounds, 0.5),
        "bound_worst": min(bounds, default=None),
    }


def main(argv):
    time_limit = 10.0
    if len(argv) >= 2 and argv[0] == "--time-limit":
        time_limit = float(argv[1])
        argv = argv[2:]
    results = []
    for path in argv:
        with open(path) as f:
            doc = json.load(f)
        try:
            r = judge(doc, time_limit)
        except ValueError as e:
            print(f"oracle: {path}: {e}", file=sys.stderr)
            return 2
        r["file"] = path
        results.append(r)
        print(json.dumps(r), flush=True)
    print(json.dumps({"summary": summary(results)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
