//! A size optimiser for the classic BPF programs seccompiler emits.
//!
//! seccompiler lays out every syscall as five instructions (a compare, two
//! jumps through `ja` trampolines, and both returns), so an allowlist of
//! 320 syscalls is some 1,600 instructions. The kernel copies, converts and
//! JIT-compiles the whole program on every sandbox start, and every syscall
//! the workload makes walks it. This pass keeps the program's meaning and
//! drops the padding:
//!
//! - jump threading: a jump to a `ja` goes straight to where the `ja` goes;
//! - shared returns: a conditional jump to `ret K` goes to the furthest
//!   identical `ret K` it can reach (conditional offsets are 8 bits);
//! - dead code: whatever no path reaches is removed.
//!
//! Instructions keep their order, so removing some only shortens forward
//! distances: every offset computed before removal still fits after it.
//! Anything unexpected (a jump out of the program, a path that falls off
//! its end) leaves the program as it was.

use seccompiler::sock_filter;

const BPF_CLASS_MASK: u16 = 0x07;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_OP_MASK: u16 = 0xf0;
const BPF_JA: u16 = 0x00;
const BPF_SRC_K: u16 = 0x00;
const BPF_RVAL_MASK: u16 = 0x18;
/// The farthest a conditional jump reaches: jt and jf are one byte.
const MAX_COND: usize = 255;

#[derive(Clone, Copy)]
enum Kind {
    Ret,
    Ja(usize),
    Cond(usize, usize),
    /// Anything else: goes on to the next instruction.
    Next,
}

fn kind(p: &[sock_filter], i: usize) -> Option<Kind> {
    let ins = &p[i];
    let next = i + 1;
    let k = match ins.code & BPF_CLASS_MASK {
        BPF_RET => Kind::Ret,
        BPF_JMP if ins.code & BPF_OP_MASK == BPF_JA => Kind::Ja(next.checked_add(ins.k as usize)?),
        BPF_JMP => Kind::Cond(next + ins.jt as usize, next + ins.jf as usize),
        _ => Kind::Next,
    };
    let in_range = match k {
        Kind::Ret => true,
        Kind::Ja(t) => t < p.len(),
        Kind::Cond(t, f) => t < p.len() && f < p.len(),
        Kind::Next => next < p.len(),
    };
    in_range.then_some(k)
}

fn is_ret_k(ins: &sock_filter) -> bool {
    ins.code & BPF_CLASS_MASK == BPF_RET && ins.code & BPF_RVAL_MASK == BPF_SRC_K
}

/// The optimised program, or `None` to keep `prog` as it is. Repeated while
/// it shrinks: each round measures reach in the layout it starts from.
///
/// The result is kept only when [`equivalent`] proves it answers every
/// input as `prog` does, so a flaw in the rewriting can cost size, never
/// protection.
pub fn optimize(prog: &[sock_filter]) -> Option<Vec<sock_filter>> {
    let mut best = one_round(prog)?;
    for _ in 0..3 {
        match one_round(&best) {
            Some(smaller) => best = smaller,
            None => break,
        }
    }
    equivalent(prog, &best).then_some(best)
}

/// Whether `a` and `b` give the same verdict on every input, by walking
/// both in lockstep: skipping `ja`s, every pair of matched instructions
/// must be the same operation on the same constant, conditional jumps go
/// on pairwise through both branches, and matched returns are identical.
/// Only forward jumps exist, so the walk ends; it also checks that both
/// programs stay in bounds, end in a return and fit the kernel's limit.
pub fn equivalent(a: &[sock_filter], b: &[sock_filter]) -> bool {
    const BPF_MAXINSNS: usize = 4096;
    let well_formed = |p: &[sock_filter]| {
        !p.is_empty()
            && p.len() <= BPF_MAXINSNS
            && (0..p.len()).all(|i| kind(p, i).is_some())
            && matches!(kind(p, p.len() - 1), Some(Kind::Ret))
    };
    if !well_formed(a) || !well_formed(b) {
        return false;
    }
    // Past any `ja`s (in range: checked above; forward: offsets are unsigned).
    let land = |p: &[sock_filter], mut i: usize| {
        while let Some(Kind::Ja(t)) = kind(p, i) {
            i = t;
        }
        i
    };
    let mut seen = std::collections::HashSet::new();
    let mut work = vec![(land(a, 0), land(b, 0))];
    while let Some((i, j)) = work.pop() {
        if !seen.insert((i, j)) {
            continue;
        }
        let (x, y) = (&a[i], &b[j]);
        if x.code != y.code || x.k != y.k {
            return false;
        }
        match (kind(a, i), kind(b, j)) {
            (Some(Kind::Ret), Some(Kind::Ret)) => {}
            (Some(Kind::Cond(at, af)), Some(Kind::Cond(bt, bf))) => {
                work.push((land(a, at), land(b, bt)));
                work.push((land(a, af), land(b, bf)));
            }
            (Some(Kind::Next), Some(Kind::Next)) => work.push((land(a, i + 1), land(b, j + 1))),
            _ => return false,
        }
    }
    true
}

fn one_round(prog: &[sock_filter]) -> Option<Vec<sock_filter>> {
    let n = prog.len();
    let mut kinds = (0..n).map(|i| kind(prog, i)).collect::<Option<Vec<_>>>()?;

    // Where a chain of `ja`s ends (jumps only go forward: no cycles).
    let land = |kinds: &[Kind], mut t: usize| {
        while let Kind::Ja(next) = kinds[t] {
            t = next;
        }
        t
    };
    // For each distinct `ret K`: the copy jumps go to, while it is ahead
    // and in reach; then the furthest copy in reach becomes the next one.
    let mut shared: std::collections::BTreeMap<(u16, u32), usize> = Default::default();
    let mut share = |t: usize, i: usize| {
        if !is_ret_k(&prog[t]) {
            return t;
        }
        let key = (prog[t].code, prog[t].k);
        let reach = (i + 1 + MAX_COND).min(n - 1);
        if let Some(&p) = shared.get(&key).filter(|&&p| p > i && p <= reach) {
            return p;
        }
        let p = (t..=reach)
            .rev()
            .find(|&p| is_ret_k(&prog[p]) && (prog[p].code, prog[p].k) == key)
            .unwrap_or(t);
        shared.insert(key, p);
        p
    };
    for i in 0..n {
        kinds[i] = match kinds[i] {
            Kind::Ja(t) => Kind::Ja(land(&kinds, t)),
            Kind::Cond(t, f) => {
                let mut pick = |t: usize| {
                    let landed = land(&kinds, t);
                    let t = if landed - i - 1 <= MAX_COND {
                        landed
                    } else {
                        t
                    };
                    share(t, i)
                };
                let t = pick(t);
                Kind::Cond(t, pick(f))
            }
            k => k,
        };
    }

    // Keep what a path from the first instruction reaches.
    let mut keep = vec![false; n];
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut keep[i], true) {
            continue;
        }
        match kinds[i] {
            Kind::Ret => {}
            Kind::Ja(t) => stack.push(t),
            Kind::Cond(t, f) => stack.extend([t, f]),
            Kind::Next => stack.push(i + 1),
        }
    }
    let mut new_index = vec![usize::MAX; n];
    let mut count = 0;
    for i in (0..n).filter(|&i| keep[i]) {
        new_index[i] = count;
        count += 1;
    }
    let mut out = Vec::with_capacity(count);
    for i in (0..n).filter(|&i| keep[i]) {
        let at = new_index[i];
        let offset = |t: usize| new_index[t].checked_sub(at + 1);
        let mut ins = prog[i].clone();
        match kinds[i] {
            Kind::Ja(t) => ins.k = u32::try_from(offset(t)?).ok()?,
            Kind::Cond(t, f) => {
                ins.jt = u8::try_from(offset(t)?).ok()?;
                ins.jf = u8::try_from(offset(f)?).ok()?;
            }
            // A fall-through target is the next kept instruction only if
            // nothing between was dropped; it is reachable, hence kept.
            Kind::Next if new_index[i + 1] != at + 1 => return None,
            _ => {}
        }
        out.push(ins);
    }
    (out.len() < n).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic BPF interpreter for what seccomp filters use, to check
    /// that an optimised program answers exactly as the original.
    fn run(p: &[sock_filter], data: &[u32; 16]) -> u32 {
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let ins = &p[pc];
            pc += 1;
            match ins.code {
                0x20 => a = data[ins.k as usize / 4], // ld [k]
                0x54 => a &= ins.k,                   // and #k
                0x05 => pc += ins.k as usize,         // ja
                0x15 => pc += if a == ins.k { ins.jt } else { ins.jf } as usize, // jeq
                0x25 => pc += if a > ins.k { ins.jt } else { ins.jf } as usize, // jgt
                0x35 => pc += if a >= ins.k { ins.jt } else { ins.jf } as usize, // jge
                0x45 => pc += if a & ins.k != 0 { ins.jt } else { ins.jf } as usize, // jset
                0x06 => return ins.k,                 // ret #k
                c => panic!("instruction {c:#x} not in the interpreter"),
            }
        }
    }

    #[test]
    fn drops_padding_and_keeps_far_jumps_in_reach() {
        // ld nr; 300 x (jeq i -> ja -> ret allow | ja -> next); ret kill
        let stmt = |code: u16, k: u32| sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        let mut p = vec![stmt(0x20, 0)];
        for nr in 0..300u32 {
            p.push(sock_filter {
                code: 0x15,
                jt: 0,
                jf: 1,
                k: nr,
            });
            p.push(stmt(0x05, 1));
            p.push(stmt(0x05, 2));
            p.push(stmt(0x06, 0x7fff_0000));
            p.push(stmt(0x06, 0x0005_0001));
        }
        p.push(stmt(0x06, 0));
        let o = optimize(&p).unwrap();
        assert!(o.len() < 320, "{} instructions", o.len());
        let mut data = [0u32; 16];
        for nr in 0..400 {
            data[0] = nr;
            assert_eq!(run(&o, &data), run(&p, &data), "nr {nr}");
        }

        // The lockstep check that guards every optimised program sees any
        // change of verdict: another return value, or swapped branches.
        assert!(equivalent(&p, &o));
        let ret = o.iter().rposition(|i| i.k == 0x7fff_0000).unwrap();
        let mut other_ret = o.clone();
        other_ret[ret].k = 0x0005_0001;
        assert!(!equivalent(&p, &other_ret));
        let cond = o.iter().position(|i| i.code == 0x15).unwrap();
        let mut swapped = o.clone();
        let (t, f) = (swapped[cond].jt, swapped[cond].jf);
        (swapped[cond].jt, swapped[cond].jf) = (f, t);
        assert!(!equivalent(&p, &swapped));
    }

    /// Every shipped profile, Docker's default and containers-common's, for
    /// both architectures: the optimised filters answer exactly as
    /// seccompiler's for every syscall number (and x32's), foreign
    /// architectures, and arguments around every value the rules compare with.
    #[test]
    fn shipped_and_docker_profiles_answer_exactly_as_before() {
        use crate::policy::seccomp::{compile_with, Arch};
        let models = crate::policy::reference_seccomp_models();
        let audit = |arch: Arch| match arch {
            Arch::X86_64 => 0xc000_003e_u32,
            Arch::Aarch64 => 0xc000_00b7,
        };
        let mut checked = 0u64;
        for (name, model, only) in &models {
            for arch in Arch::ALL
                .into_iter()
                .filter(|a| only.is_none_or(|o| o == *a))
            {
                let plain = compile_with(model, arch, false).unwrap();
                let small = compile_with(model, arch, true).unwrap();
                assert_eq!(plain.programs.len(), small.programs.len());
                let mut values = vec![
                    0u64,
                    1,
                    2,
                    3,
                    0x7fff_ffff,
                    0x8000_0000,
                    0xffff_ffff,
                    u64::MAX,
                ];
                for r in model.effective_rules() {
                    for c in &r.conditions {
                        let v = c.value;
                        values.extend([v, v.wrapping_add(1), v.wrapping_sub(1), v | 1 << 32]);
                        if let crate::policy::seccomp::CmpOp::MaskedEq(m) = c.op {
                            values.extend([m, !m, v | !m, v & m]);
                        }
                    }
                }
                values.sort_unstable();
                values.dedup();
                // Arguments matter only where a rule compares them.
                let compared: Vec<u32> = model
                    .effective_rules()
                    .iter()
                    .filter(|r| !r.conditions.is_empty())
                    .flat_map(|r| r.syscalls.iter().filter_map(|s| arch.syscall(s)))
                    .map(|nr| nr as u32)
                    .collect();
                let (longest, shrunk) = plain
                    .programs
                    .iter()
                    .zip(&small.programs)
                    .map(|(p, q)| (p.len(), q.len()))
                    .max()
                    .unwrap();
                assert!(
                    shrunk * 3 < longest,
                    "{name} on {arch:?}: {longest} -> {shrunk} instructions"
                );
                for (p, q) in plain.programs.iter().zip(&small.programs) {
                    assert!(q.len() <= p.len(), "{name}: grew");
                    for nr in (0..480u32).chain((0..480).map(|n| n | 0x4000_0000)) {
                        for arch_word in [audit(arch), 0x4000_0003] {
                            let mut data = [0u32; 16];
                            data[0] = nr;
                            data[1] = arch_word;
                            let mut cases = vec![data, data.map(|_| 0xffff_ffff), data];
                            cases[1][0] = nr;
                            cases[1][1] = arch_word;
                            cases[2][4..].copy_from_slice(&[1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0]);
                            let sweep: &[u64] = if compared.contains(&nr) { &values } else { &[] };
                            for idx in 0..6 {
                                for &v in sweep {
                                    let mut d = data;
                                    d[4 + 2 * idx] = v as u32;
                                    d[5 + 2 * idx] = (v >> 32) as u32;
                                    cases.push(d);
                                }
                            }
                            for d in cases {
                                assert_eq!(
                                    run(q, &d),
                                    run(p, &d),
                                    "{name} on {arch:?}: nr {nr:#x}, data {d:x?}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    #[test]
    fn leaves_broken_programs_alone() {
        let jump_out = [sock_filter {
            code: 0x05,
            jt: 0,
            jf: 0,
            k: 7,
        }];
        assert!(optimize(&jump_out).is_none());
        let falls_off = [sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 0,
        }];
        assert!(optimize(&falls_off).is_none());
    }
}
