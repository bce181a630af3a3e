//! Merge a sandbox's seccomp programs into one that finds the syscall by
//! binary search, and prove the merged program answers every input as the
//! programs it replaces.
//!
//! Why: seccompiler tests syscall numbers one after another, and hutch
//! installs several programs (the x32 guard, one per non-default action,
//! the allowlist). On every install the kernel runs each program once per
//! syscall number to precompute which numbers are always allowed (the
//! seccomp action cache, `seccomp_cache_prepare`), with interrupts off: for
//! a linear 323-instruction allowlist that emulation is most of the 0.5 ms
//! the install takes. A search tree answers any number in about ten
//! instructions, and one program is one copy, one JIT compile, one cache
//! pass. Syscalls whose verdict depends on arguments keep seccompiler's
//! argument tests, specialised to their number.
//!
//! How the proof works: seccomp programs here only compare the syscall
//! number and the architecture with constants (`jeq`, `jgt`, `jge`), so
//! every number between two consecutive "boundaries" (each constant `k` and
//! `k + 1`) takes the same path through every program. Running the
//! programs once per boundary (and architecture boundary) therefore covers
//! all 2^32 numbers. Where a path reaches the arguments, the merged program
//! must perform the same instructions on them, in lockstep, down to
//! returns that combine as the kernel combines several filters' verdicts.
//! Anything outside this model (scratch memory, the X register, arithmetic
//! on the number before comparing it) makes the merge give up, and the
//! caller keeps the separate programs.

use std::collections::{BTreeSet, HashMap, HashSet};

use seccompiler::sock_filter;

use super::seccomp::MAX_INSNS;

const LD_W_ABS: u16 = 0x20;
const AND_K: u16 = 0x54;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
/// seccomp_data offsets.
const NR: u32 = 0;
const ARCH: u32 = 4;
const DATA_END: u32 = 64;
/// A bound on the specialised argument tests of one syscall number.
const MAX_NODE: usize = 512;

/// What the accumulator holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Val {
    /// A constant, whatever the input.
    Const(u32),
    /// The syscall number or architecture word, as loaded.
    Field(u32, u32),
    /// Derived from the number or architecture by arithmetic: comparing it
    /// would break the boundary argument.
    Derived(u32),
    /// Derived from the arguments or instruction pointer; the id names the
    /// instructions that made it (see [`Syms`]).
    Sym(u32),
}

/// Interned histories of argument-derived values: equal ids in the two
/// programs mean the same instructions were applied to the same load.
#[derive(Default)]
struct Syms(HashMap<(u32, u16, u32), u32>);

impl Syms {
    fn get(&mut self, parent: u32, code: u16, k: u32) -> u32 {
        let n = self.0.len() as u32 + 1;
        *self.0.entry((parent, code, k)).or_insert(n)
    }
}

/// Where a fold stopped: a verdict, or an instruction that depends on the
/// arguments (to be matched in lockstep or emitted).
enum Stop {
    Ret(u32),
    At(usize, Val),
}

/// Run `p` from `pc` with the number and architecture known, until a
/// return or an instruction that depends on the arguments. `None` for
/// anything outside the model. `arch_consts` are the constants the
/// architecture may be compared with (the proof's partition).
fn fold(
    p: &[sock_filter],
    mut pc: usize,
    mut a: Val,
    nr: u32,
    arch: u32,
    arch_consts: &BTreeSet<u32>,
) -> Option<Stop> {
    loop {
        let ins = p.get(pc)?;
        let next = pc + 1;
        match ins.code {
            RET_K => return Some(Stop::Ret(ins.k)),
            LD_W_ABS if ins.k == NR => a = Val::Field(NR, nr),
            LD_W_ABS if ins.k == ARCH => a = Val::Field(ARCH, arch),
            LD_W_ABS if ins.k < DATA_END && ins.k % 4 == 0 => return Some(Stop::At(pc, a)),
            AND_K => match a {
                Val::Const(v) => a = Val::Const(v & ins.k),
                Val::Field(_, v) | Val::Derived(v) => a = Val::Derived(v & ins.k),
                Val::Sym(_) => return Some(Stop::At(pc, a)),
            },
            JA => {
                pc = next.checked_add(ins.k as usize)?;
                continue;
            }
            JEQ_K | JGT_K | JGE_K | JSET_K => {
                let v = match a {
                    Val::Const(v) => v,
                    Val::Field(NR, v) if ins.code != JSET_K => v,
                    Val::Field(_, v) if ins.code != JSET_K && arch_consts.contains(&ins.k) => v,
                    Val::Sym(_) => return Some(Stop::At(pc, a)),
                    _ => return None,
                };
                let taken = match ins.code {
                    JEQ_K => v == ins.k,
                    JGT_K => v > ins.k,
                    JGE_K => v >= ins.k,
                    _ => v & ins.k != 0,
                };
                pc = next + if taken { ins.jt } else { ins.jf } as usize;
                continue;
            }
            _ => return None,
        }
        pc = next;
    }
}

/// One step past an argument-dependent instruction: the successors and the
/// accumulator after it.
fn step(p: &[sock_filter], pc: usize, a: Val, syms: &mut Syms) -> Option<Vec<(usize, Val)>> {
    let ins = &p[pc];
    let parent = match a {
        Val::Sym(s) => s,
        _ => 0,
    };
    Some(match ins.code {
        LD_W_ABS => vec![(pc + 1, Val::Sym(syms.get(0, ins.code, ins.k)))],
        AND_K => vec![(pc + 1, Val::Sym(syms.get(parent, ins.code, ins.k)))],
        JEQ_K | JGT_K | JGE_K | JSET_K => {
            vec![(pc + 1 + ins.jt as usize, a), (pc + 1 + ins.jf as usize, a)]
        }
        _ => return None,
    })
}

/// The constants every program compares with: the number's partition.
fn boundaries(progs: &[&[sock_filter]]) -> Vec<u32> {
    let mut b = BTreeSet::from([0u32]);
    for p in progs {
        for ins in p.iter() {
            if matches!(ins.code, JEQ_K | JGT_K | JGE_K | JSET_K) {
                b.insert(ins.k);
                if let Some(k1) = ins.k.checked_add(1) {
                    b.insert(k1);
                }
            }
        }
    }
    b.into_iter().collect()
}

/// The constants compared right after loading the architecture word.
fn arch_constants(progs: &[&[sock_filter]]) -> BTreeSet<u32> {
    let mut set = BTreeSet::new();
    for p in progs {
        for w in p.windows(2) {
            if w[0].code == LD_W_ABS && w[0].k == ARCH && matches!(w[1].code, JEQ_K | JGT_K | JGE_K)
            {
                set.insert(w[1].k);
            }
        }
    }
    set
}

fn arch_reps(consts: &BTreeSet<u32>) -> Vec<u32> {
    let mut r = BTreeSet::from([0u32]);
    for &k in consts {
        r.insert(k);
        if let Some(k1) = k.checked_add(1) {
            r.insert(k1);
        }
    }
    r.into_iter().collect()
}

/// How the kernel combines verdicts: programs run newest first, and an
/// older one's verdict wins only with a strictly higher-precedence action
/// (lower as a signed number: KILL_PROCESS is negative).
fn combine(rets: impl DoubleEndedIterator<Item = u32>) -> u32 {
    let action = |r: u32| (r & 0xffff_0000) as i32;
    let mut it = rets.rev();
    let mut ret = it.next().unwrap_or(0x7fff_0000);
    for r in it {
        if action(r) < action(ret) {
            ret = r;
        }
    }
    ret
}

/// The argument tests of one syscall number, specialised: an instruction
/// and what follows it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Node {
    Ret(u32),
    Op(u16, u32, Box<Node>),
    Branch(u16, u32, Box<Node>, Box<Node>),
}

impl Node {
    fn map_rets(self, f: &dyn Fn(u32) -> u32) -> Node {
        match self {
            Node::Ret(k) => Node::Ret(f(k)),
            Node::Op(c, k, n) => Node::Op(c, k, Box::new(n.map_rets(f))),
            Node::Branch(c, k, t, e) => {
                Node::Branch(c, k, Box::new(t.map_rets(f)), Box::new(e.map_rets(f)))
            }
        }
    }
}

/// `p`'s behaviour for one number and architecture, as a [`Node`].
fn specialise(
    p: &[sock_filter],
    pc: usize,
    a: Val,
    (nr, arch): (u32, u32),
    consts: &BTreeSet<u32>,
    syms: &mut Syms,
    budget: &mut usize,
) -> Option<Node> {
    *budget = budget.checked_sub(1)?;
    match fold(p, pc, a, nr, arch, consts)? {
        Stop::Ret(k) => Some(Node::Ret(k)),
        Stop::At(pc, a) => {
            let ins = &p[pc];
            let next = step(p, pc, a, syms)?;
            let mut sub = next
                .into_iter()
                .map(|(pc, a)| specialise(p, pc, a, (nr, arch), consts, syms, budget));
            Some(match next_len(ins.code) {
                1 => Node::Op(ins.code, ins.k, Box::new(sub.next()??)),
                _ => {
                    let t = sub.next()??;
                    let f = sub.next()??;
                    Node::Branch(ins.code, ins.k, Box::new(t), Box::new(f))
                }
            })
        }
    }
}

fn next_len(code: u16) -> usize {
    match code {
        JEQ_K | JGT_K | JGE_K | JSET_K => 2,
        _ => 1,
    }
}

/// The merged behaviour of all programs for one number and architecture:
/// constant verdicts combined, or the one program that tests arguments
/// with its verdicts combined with the others'.
fn merged_node(
    progs: &[&[sock_filter]],
    nr: u32,
    arch: u32,
    consts: &BTreeSet<u32>,
) -> Option<Node> {
    let mut syms = Syms::default();
    let nodes: Vec<Node> = progs
        .iter()
        .map(|p| {
            specialise(p, 0, Val::Const(0), (nr, arch), consts, &mut syms, &mut {
                MAX_NODE
            })
        })
        .collect::<Option<_>>()?;
    let dependent: Vec<usize> = (0..nodes.len())
        .filter(|&i| !matches!(nodes[i], Node::Ret(_)))
        .collect();
    let ret = |n: &Node| match n {
        Node::Ret(k) => *k,
        _ => 0,
    };
    match dependent[..] {
        [] => Some(Node::Ret(combine(nodes.iter().map(ret)))),
        [i] => {
            let others: Vec<Option<u32>> = nodes
                .iter()
                .enumerate()
                .map(|(j, n)| (j != i).then(|| ret(n)))
                .collect();
            let f = move |k: u32| combine(others.iter().map(|o| o.unwrap_or(k)));
            Some(nodes[i].clone().map_rets(&f))
        }
        _ => None,
    }
}

/// Instructions with jump targets as indices, laid out before offsets.
struct Emit {
    out: Vec<(u16, u32, usize, usize)>,
}

const NONE: usize = usize::MAX;

impl Emit {
    fn push(&mut self, code: u16, k: u32, t: usize, f: usize) -> usize {
        self.out.push((code, k, t, f));
        self.out.len() - 1
    }

    /// A conditional jump: true to `t`, false to the next instruction.
    /// Targets are patched later.
    fn node(&mut self, n: &Node) {
        match n {
            Node::Ret(k) => {
                self.push(RET_K, *k, NONE, NONE);
            }
            Node::Op(c, k, next) => {
                self.push(*c, *k, NONE, NONE);
                self.node(next);
            }
            Node::Branch(c, k, t, f) => {
                let at = self.push(*c, *k, NONE, NONE);
                self.node(f);
                let t_at = self.out.len();
                self.node(t);
                self.out[at].2 = t_at;
                self.out[at].3 = at + 1;
            }
        }
    }

    /// A search over `ranges` (sorted, adjacent, each `(lo, node)` up to
    /// the next one's `lo`), the number in the accumulator.
    fn tree(&mut self, ranges: &[(u32, Node)]) {
        if ranges.len() == 1 {
            self.node(&ranges[0].1);
            return;
        }
        let mid = ranges.len() / 2;
        let at = self.push(JGE_K, ranges[mid].0, NONE, NONE);
        self.tree(&ranges[..mid]);
        let right = self.out.len();
        self.tree(&ranges[mid..]);
        self.out[at].2 = right;
        self.out[at].3 = at + 1;
    }

    /// Offsets from indices; a conditional jump farther than 255 goes
    /// through a `ja` placed right after it.
    fn finish(self) -> Option<Vec<sock_filter>> {
        let n = self.out.len();
        // Which targets need a trampoline: a fixed point, since each one
        // inserted can only lengthen other jumps.
        let mut far = vec![(false, false); n];
        let pos = loop {
            let mut pos = vec![0usize; n + 1];
            let mut p = 0;
            for i in 0..n {
                pos[i] = p;
                p += 1 + usize::from(far[i].0) + usize::from(far[i].1);
            }
            pos[n] = p;
            let mut changed = false;
            for i in 0..n {
                let (_, _, t, f) = self.out[i];
                if t == NONE {
                    continue;
                }
                let after = pos[i] + 1;
                let needs =
                    |target: usize| pos[target].checked_sub(after).map_or(true, |d| d > 255);
                let want = (far[i].0 || needs(t), far[i].1 || needs(f));
                if want != far[i] {
                    far[i] = want;
                    changed = true;
                }
            }
            if !changed {
                break pos;
            }
        };
        let mut prog = Vec::with_capacity(pos[n]);
        for i in 0..n {
            let (code, k, t, f) = self.out[i];
            if t == NONE {
                prog.push(sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                });
                continue;
            }
            let (ft, ff) = far[i];
            let after = pos[i] + 1;
            let slot_t = after;
            let slot_f = after + usize::from(ft);
            let jt = if ft { slot_t - after } else { pos[t] - after };
            let jf = if ff { slot_f - after } else { pos[f] - after };
            prog.push(sock_filter {
                code,
                jt: u8::try_from(jt).ok()?,
                jf: u8::try_from(jf).ok()?,
                k,
            });
            for (is_far, target, slot) in [(ft, t, slot_t), (ff, f, slot_f)] {
                if is_far {
                    let k = u32::try_from(pos[target].checked_sub(slot + 1)?).ok()?;
                    prog.push(sock_filter {
                        code: JA,
                        jt: 0,
                        jf: 0,
                        k,
                    });
                }
            }
        }
        (prog.len() <= MAX_INSNS).then_some(prog)
    }
}

/// One program doing what `progs` installed in order do together, found
/// by binary search on the syscall number, or `None` (keep `progs`) when
/// they fall outside the model or the proof fails. `native` is the
/// AUDIT_ARCH value of the architecture the programs are for.
pub fn merge(progs: &[Vec<sock_filter>], native: u32) -> Option<Vec<sock_filter>> {
    let refs: Vec<&[sock_filter]> = progs.iter().map(Vec::as_slice).collect();
    if refs.is_empty() {
        return None;
    }
    let consts = arch_constants(&refs);
    if !consts.contains(&native) {
        return None;
    }
    // The native architecture's numbers, by range.
    let mut ranges: Vec<(u32, Node)> = Vec::new();
    for nr in boundaries(&refs) {
        let node = merged_node(&refs, nr, native, &consts)?;
        if ranges.last().map_or(true, |(_, n)| *n != node) {
            ranges.push((nr, node));
        }
    }
    // Any other architecture: one verdict, whatever the number (checked
    // by the proof for every architecture and number boundary).
    let foreign = if native == 0 { 1 } else { 0 };
    let other = merged_node(&refs, 0, foreign, &consts)?;
    let mut e = Emit { out: Vec::new() };
    e.push(LD_W_ABS, ARCH, NONE, NONE);
    let arch_jump = e.push(JEQ_K, native, NONE, NONE);
    e.push(LD_W_ABS, NR, NONE, NONE);
    e.tree(&ranges);
    let other_at = e.out.len();
    e.node(&other);
    e.out[arch_jump].2 = arch_jump + 1;
    e.out[arch_jump].3 = other_at;
    let merged = e.finish()?;
    equivalent(progs, &merged).then_some(merged)
}

/// Whether `merged` answers every input as `progs` installed in order do
/// together (see the module comment for why the checked inputs cover all).
pub fn equivalent(progs: &[Vec<sock_filter>], merged: &[sock_filter]) -> bool {
    let mut refs: Vec<&[sock_filter]> = progs.iter().map(Vec::as_slice).collect();
    refs.push(merged);
    let consts = arch_constants(&refs);
    let nrs = boundaries(&refs);
    let originals = &refs[..refs.len() - 1];
    for arch in arch_reps(&consts) {
        for &nr in &nrs {
            if !equivalent_at(originals, merged, nr, arch, &consts) {
                return false;
            }
        }
    }
    true
}

fn equivalent_at(
    progs: &[&[sock_filter]],
    merged: &[sock_filter],
    nr: u32,
    arch: u32,
    consts: &BTreeSet<u32>,
) -> bool {
    let mut stops = Vec::new();
    for p in progs {
        match fold(p, 0, Val::Const(0), nr, arch, consts) {
            Some(s) => stops.push(s),
            None => return false,
        }
    }
    let dependent: Vec<usize> = (0..stops.len())
        .filter(|&i| matches!(stops[i], Stop::At(..)))
        .collect();
    let ret = |s: &Stop| match s {
        Stop::Ret(k) => *k,
        Stop::At(..) => 0,
    };
    let Some(m) = fold(merged, 0, Val::Const(0), nr, arch, consts) else {
        return false;
    };
    let i = match dependent[..] {
        [] => {
            return matches!(m, Stop::Ret(k) if k == combine(stops.iter().map(ret)));
        }
        [i] => i,
        _ => return false,
    };
    let others: Vec<Option<u32>> = stops
        .iter()
        .enumerate()
        .map(|(j, s)| (j != i).then(|| ret(s)))
        .collect();
    let map = |k: u32| combine(others.iter().map(|o| o.unwrap_or(k)));
    // Lockstep over the argument-dependent parts.
    let p = progs[i];
    let mut syms = Syms::default();
    let mut seen = HashSet::new();
    let mut work = vec![(0usize, Val::Const(0), 0usize, Val::Const(0))];
    while let Some((pa, aa, pb, ab)) = work.pop() {
        if !seen.insert((pa, aa, pb, ab)) {
            continue;
        }
        let (Some(sa), Some(sb)) = (
            fold(p, pa, aa, nr, arch, consts),
            fold(merged, pb, ab, nr, arch, consts),
        ) else {
            return false;
        };
        match (sa, sb) {
            (Stop::Ret(x), Stop::Ret(y)) if map(x) == y => {}
            (Stop::At(pa, aa), Stop::At(pb, ab)) => {
                let (x, y) = (&p[pa], &merged[pb]);
                if x.code != y.code || x.k != y.k {
                    return false;
                }
                // Arithmetic or a test on argument values: the same values.
                if x.code != LD_W_ABS && aa != ab {
                    return false;
                }
                let (Some(na), Some(nb)) =
                    (step(p, pa, aa, &mut syms), step(merged, pb, ab, &mut syms))
                else {
                    return false;
                };
                for ((qa, va), (qb, vb)) in na.into_iter().zip(nb) {
                    work.push((qa, va, qb, vb));
                }
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(code: u16, k: u32) -> sock_filter {
        sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }
    fn j(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }

    /// An interpreter for what the programs here use.
    fn run(p: &[sock_filter], data: &[u32; 16]) -> u32 {
        run_counted(p, data).0
    }

    /// The verdict and how many instructions gave it.
    fn run_counted(p: &[sock_filter], data: &[u32; 16]) -> (u32, usize) {
        let (mut a, mut pc, mut steps) = (0u32, 0usize, 0);
        loop {
            let ins = &p[pc];
            pc += 1;
            steps += 1;
            match ins.code {
                LD_W_ABS => a = data[ins.k as usize / 4],
                AND_K => a &= ins.k,
                JA => pc += ins.k as usize,
                JEQ_K => pc += if a == ins.k { ins.jt } else { ins.jf } as usize,
                JGT_K => pc += if a > ins.k { ins.jt } else { ins.jf } as usize,
                JGE_K => pc += if a >= ins.k { ins.jt } else { ins.jf } as usize,
                JSET_K => pc += if a & ins.k != 0 { ins.jt } else { ins.jf } as usize,
                RET_K => return (ins.k, steps),
                c => panic!("instruction {c:#x} not in the interpreter"),
            }
        }
    }

    /// What several programs installed in order answer together.
    fn run_all(progs: &[Vec<sock_filter>], data: &[u32; 16]) -> u32 {
        combine(
            progs
                .iter()
                .map(|p| run(p, data))
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }

    const X86: u32 = 0xc000_003e;

    /// ld arch; jeq X86 else kill; ld nr; a linear allowlist of `nrs`
    /// (ioctl-like `argnr` allowed only when arg0 != 7); ret errno.
    fn linear(nrs: &[u32], argnr: u32) -> Vec<sock_filter> {
        let mut p = vec![
            s(LD_W_ABS, ARCH),
            j(JEQ_K, X86, 1, 0),
            s(RET_K, 0x8000_0000),
            s(LD_W_ABS, NR),
        ];
        let n = nrs.len() as u8;
        // each: jeq nr -> allow (at the end)
        for (i, &nr) in nrs.iter().enumerate() {
            p.push(j(JEQ_K, nr, n - i as u8 + 4, 0));
        }
        // arg check for argnr
        p.push(j(JEQ_K, argnr, 0, 3));
        p.push(s(LD_W_ABS, 16));
        p.push(j(JEQ_K, 7, 1, 0));
        p.push(s(RET_K, 0x7fff_0000));
        p.push(s(RET_K, 0x0005_0001));
        p.push(s(RET_K, 0x7fff_0000));
        p
    }

    #[test]
    fn merges_into_a_short_search_that_answers_as_before() {
        let allow: Vec<u32> = (0..40).chain(50..60).chain([100, 200, 300]).collect();
        let progs = vec![
            crate::policy::seccomp::x32_guard(),
            vec![
                s(LD_W_ABS, ARCH),
                j(JEQ_K, X86, 1, 0),
                s(RET_K, 0x8000_0000),
                s(LD_W_ABS, NR),
                j(JEQ_K, 55, 0, 1),
                s(RET_K, 0x0005_0026),
                s(RET_K, 0x7fff_0000),
            ],
            linear(&allow, 16),
        ];
        let m = merge(&progs, X86).expect("merged");
        for arch in [X86, 0x4000_0003, 0, u32::MAX] {
            for nr in (0..400).chain([0x4000_0000, 0x4000_0010, u32::MAX]) {
                for arg in [0, 7, 8] {
                    let mut d = [0u32; 16];
                    (d[0], d[1], d[4]) = (nr, arch, arg);
                    assert_eq!(
                        run(&m, &d),
                        run_all(&progs, &d),
                        "arch {arch:#x} nr {nr} arg {arg}"
                    );
                }
            }
        }
        // A changed verdict anywhere is caught by the proof.
        for i in 0..m.len() {
            if m[i].code == RET_K {
                let mut bad = m.clone();
                bad[i].k ^= 1;
                assert!(!equivalent(&progs, &bad), "ret {i}");
            }
            if m[i].code == JGE_K {
                let mut bad = m.clone();
                bad[i].k += 1;
                assert!(!equivalent(&progs, &bad), "jge {i}");
            }
        }
    }

    /// Every shipped profile and Docker's two reference profiles, on both
    /// architectures: merged into one program (the shipped ones all are),
    /// which answers as the
    /// separate programs do for every syscall number hutch knows (and x32's
    /// and beyond), foreign architectures, and arguments around every value
    /// a rule compares with; and decides any number in a few instructions.
    #[test]
    fn shipped_and_docker_profiles_merge_and_answer_as_before() {
        use crate::policy::seccomp::{compile, compile_with, Arch};
        let models = crate::policy::reference_seccomp_models();
        for (name, model, only) in &models {
            for arch in Arch::ALL
                .into_iter()
                .filter(|a| only.is_none_or(|o| o == *a))
            {
                let separate = compile_with(model, arch, true).unwrap().programs;
                let merged = compile(model, arch).unwrap().programs;
                // Docker's profiles test arguments of `socket` in two
                // programs (an errno rule and the allowlist), which the
                // merge leaves separate.
                if only.is_some() && merged.len() > 1 {
                    assert_eq!(merged, separate, "{name} on {arch:?}");
                    continue;
                }
                assert_eq!(merged.len(), 1, "{name} on {arch:?} was not merged");
                let m = &merged[0];
                let mut values = vec![0u64, 1, 7, 0x5412, 0x8000_0000, 0xffff_ffff, u64::MAX];
                for r in model.effective_rules() {
                    for c in &r.conditions {
                        let v = c.value;
                        values.extend([v, v.wrapping_add(1), v.wrapping_sub(1), v | 1 << 32]);
                        if let crate::policy::seccomp::CmpOp::MaskedEq(k) = c.op {
                            values.extend([k, !k, v | !k, v & k]);
                        }
                    }
                }
                let compared: Vec<u32> = model
                    .effective_rules()
                    .iter()
                    .filter(|r| !r.conditions.is_empty())
                    .flat_map(|r| r.syscalls.iter().filter_map(|s| arch.syscall(s)))
                    .map(|nr| nr as u32)
                    .collect();
                let mut longest = 0;
                for nr in (0..500u32)
                    .chain((0..500).map(|n| n | 0x4000_0000))
                    .chain([u32::MAX])
                {
                    for arch_word in [arch.audit(), 0x4000_0003] {
                        let mut base = [0u32; 16];
                        (base[0], base[1]) = (nr, arch_word);
                        let mut cases = vec![base];
                        if compared.contains(&nr) {
                            for idx in 0..6 {
                                for &v in &values {
                                    let mut d = base;
                                    d[4 + 2 * idx] = v as u32;
                                    d[5 + 2 * idx] = (v >> 32) as u32;
                                    cases.push(d);
                                }
                            }
                        } else {
                            let (verdict, steps) = run_counted(m, &base);
                            let _ = verdict;
                            longest = longest.max(steps);
                        }
                        for d in cases {
                            assert_eq!(
                                run(m, &d),
                                run_all(&separate, &d),
                                "{name} on {arch:?}: nr {nr:#x}, data {d:x?}"
                            );
                        }
                    }
                }
                assert!(
                    longest <= 16,
                    "{name} on {arch:?}: {longest} instructions for a number"
                );
            }
        }
    }
}
