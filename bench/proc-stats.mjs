// CPU time and memory of a server process read from /proc, for the bench's accounting:
// CPU = utime+stime of the process (all its threads) and of every descendant, live or reaped
// (a reaped child's time lands in its parent's cutime/cstime). Linux only; elsewhere the
// functions return null and the bench prints "n/a".
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond = null;

/** USER_HZ, the unit of the /proc/PID/stat times (100 on every common Linux). */
export function clockTicksPerSecond() {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** The fields after "(comm)" of /proc/PID/stat, or null when the process is gone. */
function statFields(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // comm may contain spaces and parentheses: the fields start after the last ')'.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

// Indexes into statFields(): field N of proc(5) is at N - 3.
const PPID = 1;
const UTIME = 11;
const STIME = 12;
const CUTIME = 13;
const CSTIME = 14;

function childrenByParent() {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    const fields = statFields(entry);
    if (!fields) continue;
    const ppid = fields[PPID];
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(entry);
  }
  return children;
}

/** PIDs of pid and all its live descendants. */
export function processTree(pid) {
  const children = childrenByParent();
  const tree = [];
  const queue = [String(pid)];
  while (queue.length > 0) {
    const next = queue.shift();
    tree.push(next);
    for (const child of children.get(next) ?? []) queue.push(child);
  }
  return tree;
}

/**
 * Seconds of CPU used so far by pid and its descendants (user + system), or null when pid is
 * gone. Compare two samples: the difference is the CPU spent in between.
 */
export function treeCpuSeconds(pid) {
  const root = statFields(pid);
  if (!root) return null;
  let ticks = 0;
  for (const member of processTree(pid)) {
    const fields = member === String(pid) ? root : statFields(member);
    if (!fields) continue;
    ticks += Number(fields[UTIME]) + Number(fields[STIME]) + Number(fields[CUTIME]) + Number(fields[CSTIME]);
  }
  return ticks / clockTicksPerSecond();
}

/** { rssMb, hwmMb } from /proc/PID/status (VmRSS now, VmHWM = peak), or null. */
export function memoryMb(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return null;
  }
  const kb = (name) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) / 1024 : null;
  };
  return { rssMb: kb('VmRSS'), hwmMb: kb('VmHWM') };
}

/**
 * Command name (comm, at most 15 characters), resident and proportional set size in MB of one
 * process from /proc/PID/smaps_rollup, or null once it is gone. Pss counts a page shared with
 * other processes in part, so the Pss of a tree can be summed.
 */
export function processMemory(pid) {
  let rollup;
  let name;
  try {
    rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1');
    name = readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
  } catch {
    return null;
  }
  const mb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0) / 1024;
  return { name, rssMb: mb('Rss'), pssMb: mb('Pss') };
}

/**
 * Per-CPU times from /proc/stat in seconds: { cpu0: { work, steal, total }, ... }, or null.
 * work = user + nice + system (what processes ran); steal = time the hypervisor gave away.
 * Used to spot other work on the bench's cores during a measured window.
 */
export function perCpuSeconds() {
  let text;
  try {
    text = readFileSync('/proc/stat', 'latin1');
  } catch {
    return null;
  }
  const hz = clockTicksPerSecond();
  const cpus = {};
  for (const line of text.split('\n')) {
    const match = /^(cpu\d+) (.*)$/.exec(line);
    if (!match) continue;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = match[2].trim().split(/\s+/).map(Number);
    cpus[match[1]] = {
      work: (user + nice + system) / hz,
      steal: (steal ?? 0) / hz,
      total: (user + nice + system + idle + iowait + irq + softirq + (steal ?? 0)) / hz,
    };
  }
  return cpus;
}

/** after − before for perCpuSeconds() samples. */
export function perCpuDelta(before, after) {
  if (!before || !after) return null;
  const delta = {};
  for (const [cpu, end] of Object.entries(after)) {
    const start = before[cpu];
    if (!start) continue;
    delta[cpu] = { work: end.work - start.work, steal: end.steal - start.steal, total: end.total - start.total };
  }
  return delta;
}
