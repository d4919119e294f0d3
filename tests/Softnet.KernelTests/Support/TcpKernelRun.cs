using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Softnet.Capture;
using Softnet.Topology;

namespace Softnet.KernelTests.Support;

// Kernel facts this runner relies on (Linux 6.18, see /work/notes/tcp-receive-6.18.md):
//
// * The kernel's ISN and TS offset come from a keyed hash with a random per-boot key, so a capture written for
//   Softnet's (deterministic) ISN would be acknowledged wrongly: an ACK in SYN_RECV whose ack field is not
//   snt_isn + 1 gets a RST. The injector therefore waits for the kernel's SYN-ACK of each flow and adds
//   (kernel ISN − capture's server ISN) to the ack field and SACK blocks of every later client segment, and
//   (kernel SYN-ACK TSval − capture's TSecr of the first ACK) to its TSecr, then recomputes the TCP checksum.
//   TSecr matters for the receiver's RTT estimate, which feeds the delayed-ACK timeout and buffer autotuning.
// * Timing matters to TCP (delayed ACKs, quick-ACK credit, what the reader drained before the next segment), so
//   frames are sent at the capture's relative timestamps, not as fast as possible.
// * The server's veth has tx checksumming, TSO, GSO and GRO off: segments on the wire carry final checksums and
//   every received frame is its own skb, as in Softnet's veth (GRO off there by default).
// * The readers run in their own process (`ip netns exec`), as the applications Softnet's sockets model: accept,
//   recv until EOF (then close) or ECONNRESET. A reader that drains the queue after a PSH segment makes the kernel
//   ACK from recvmsg (tcp_cleanup_rbuf), so a prompt reader is part of the behaviour being compared.
// * `nstat -asz` in a fresh namespace prints that namespace's counters since its creation (absolute, history
//   untouched, zeros included). It formats a copy of /proc/net/{snmp,netstat,snmp6} the injector takes as the
//   capture ends (PROC_NET_*), so nothing after the settle time (a 1 s SYN-ACK timer, the reader's exit) counts.

/// <summary>
/// Runs a TCP capture (<see cref="TcpCapture"/>) against the real kernel: builds a scenario folder in namespaces
/// (<see cref="KernelScenario.Build"/>), starts readers for the `tcp listen` lines of ns/SERVER/sockets, injects the
/// client's frames from the arrival device's veth peer paced by the capture's timestamps and rewritten into the
/// kernel's sequence space, and dumps what `softnet replay --dump` writes for that namespace: DEV.rx.pcap,
/// DEV.tx.pcap, sockets.txt, nstat.txt.
/// </summary>
public static class TcpKernelRun
{
    private static int s_runs;

    /// <summary>Milliseconds of quiet capture after the last frame's time.</summary>
    public const int SettleMs = 150;

    /// <summary>Null when the run can work here; otherwise why it cannot (for Skip).</summary>
    public static string? Unavailable() => Netns.Unavailable("python3", "sysctl", "ethtool", "nstat");

    /// <summary>Runs <paramref name="capturePath"/> (if_name = device in <paramref name="serverNs"/>) through the
    /// scenario in <paramref name="scenarioDir"/>; writes OUT/&lt;serverNs&gt;/... Returns the injector's log (the
    /// shifts it applied per flow). With <paramref name="promptReader"/> the reader runs SCHED_FIFO (chrt) where it
    /// can: woken by data it runs at once, as an idle machine's reader would, so what it drained before the next segment
    /// (and the ACKs its reads send) does not depend on other load on the machine; it runs on the injector's CPU, so it
    /// has drained each segment before the injector sends the next, as Softnet's readers have. The sysctl tests' SYN
    /// flood and Fast Open overflow leave it off. A `cpu N` on the sockets lines runs the reader on
    /// CPU N (taskset); with <paramref name="injectCpu"/> the injector runs on that CPU, /proc/net/softnet_stat is
    /// written before and after the injection to OUTDIR/softnet_stat.before and softnet_stat.after, and each namespace
    /// counts its IPv4 packets per CPU and per <paramref name="placementFlows"/> entry into OUTDIR/placement.txt
    /// (<see cref="KernelPlacement"/>).</summary>
    public static string Run(string scenarioDir, string capturePath, string serverNs, string outDir, bool promptReader = false, int injectCpu = -1,
        IReadOnlyList<string>? placementFlows = null)
    {
        var scenario = ScenarioFolder.Load(scenarioDir);
        if (!scenario.Namespaces.Contains(serverNs)) throw new ArgumentException($"no namespace '{serverNs}' in {scenarioDir}");
        string prefix = $"st{Environment.ProcessId}x{Interlocked.Increment(ref s_runs)}";
        string work = Directory.CreateTempSubdirectory("softnet-ktcp-").FullName;
        var created = new List<string>();
        Process? reader = null;
        try
        {
            KernelScenario.Build(scenario, prefix, work, created);
            string kn = KernelScenario.KernelName(prefix, serverNs);
            string nsDir = Path.Combine(outDir, serverNs);
            Directory.CreateDirectory(nsDir);

            var devices = new List<string>();
            var frames = Path.Combine(work, "frames.bin");
            using (var w = new BinaryWriter(File.Create(frames)))
            using (var r = CaptureReader.Open(capturePath))
            {
                while (r.TryRead(out var meta, out var data))
                {
                    string dev = r.Interfaces[meta.InterfaceId].Name ?? throw new ArgumentException("capture frame without if_name");
                    int t = devices.IndexOf(dev);
                    if (t < 0) { t = devices.Count; devices.Add(dev); }
                    w.Write(meta.TimestampNs);
                    w.Write(t);
                    w.Write(data.Length);
                    w.Write(data);
                }
            }
            var targets = devices.Select(d => KernelScenario.Peer(scenario, prefix, serverNs, d)).ToList();
            foreach (var dev in devices)
                Proc.Check("ip", "netns", "exec", kn, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off");

            // A prompt reader shares one CPU with the injector (unless the run places the injector itself): woken
            // by the segment the injector's send delivered (netif_rx's softirq runs in that send), the SCHED_FIFO
            // reader preempts it there and drains before the injector can send the next frame. On another CPU it
            // could still be asleep or busy then, leaving data queued, and the kernel's next window smaller
            // (tcp_select_window's free space, tcp_grow_window's room) than with the drained queue Softnet's
            // readers leave.
            (reader, string? readerCpu) = StartReaders(Path.Combine(scenario.Root, "ns", serverNs, "sockets"), kn, work, promptReader,
                promptReader && injectCpu < 0 ? SharedCpu() : null);
            string? injectOn = injectCpu >= 0 ? injectCpu.ToString(System.Globalization.CultureInfo.InvariantCulture) : promptReader ? readerCpu : null;

            string script = Path.Combine(work, "inject.py");
            File.WriteAllText(script, InjectorScript);
            string cfg = Path.Combine(work, "inject.json");
            File.WriteAllText(cfg, JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["capture"] = $"/run/netns/{kn}",
                ["targets"] = targets.Select(t => new[] { $"/run/netns/{KernelScenario.KernelName(prefix, t.Ns)}", t.Dev }).ToArray(),
                ["frames"] = frames,
                ["out"] = Path.GetFullPath(nsDir),
                ["settleMs"] = SettleMs,
                ["counters"] = work,
            }));
            // Sharing the prompt reader's CPU, the injector is SCHED_FIFO too, below the reader: its frames leave at the
            // capture's times however busy the machine is (a CFS injector pinned to one CPU waited tens of ms there at
            // load 20, and a delayed-ACK or retransmission timer fired before the next frame). A run that places the
            // injector itself (injectCpu) keeps it an ordinary task.
            string[] inject = ["python3", script, cfg];
            if (promptReader && injectCpu < 0 && Proc.Exists("chrt")) inject = ["chrt", "-f", "5", .. inject];
            if (injectOn is not null) inject = ["taskset", "-c", injectOn, .. inject];
            var placement = injectCpu < 0 ? null
                : KernelPlacement.Install(scenario.Namespaces.Select(n => (n, KernelScenario.KernelName(prefix, n))), placementFlows ?? []);
            if (injectCpu >= 0) File.WriteAllText(Path.Combine(outDir, "softnet_stat.before"), File.ReadAllText("/proc/net/softnet_stat"));
            var (exit, log, err) = Proc.Run(inject[0], inject[1..], 60_000);
            if (injectCpu >= 0) File.WriteAllText(Path.Combine(outDir, "softnet_stat.after"), File.ReadAllText("/proc/net/softnet_stat"));
            if (exit != 0) throw new InvalidOperationException($"TCP injector failed ({exit}): {err.Trim()}\n{log}");
            placement?.Collect(outDir);

            File.WriteAllText(Path.Combine(nsDir, "sockets.txt"), StopReaders(reader));
            reader = null;
            // nstat formats the injector's snapshot of the namespace's counters (taken as the capture ended).
            File.WriteAllText(Path.Combine(nsDir, "nstat.txt"), Proc.Check("ip", "netns", "exec", kn, "env",
                "PROC_NET_SNMP=" + Path.Combine(work, "snmp"), "PROC_NET_NETSTAT=" + Path.Combine(work, "netstat"),
                "PROC_NET_SNMP6=" + Path.Combine(work, "snmp6"), "nstat", "-asz"));
            return log;
        }
        finally
        {
            if (reader != null && !reader.HasExited) reader.Kill(true);
            reader?.Dispose();
            foreach (var ns in created) Proc.Run("ip", "netns", "del", ns);
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    /// <summary>The CPU a prompt reader and the injector share: the last one this process may run on.</summary>
    private static string SharedCpu()
    {
        string? allowed = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
        string last = allowed?.Split(':')[1].Split(',')[^1].Split('-')[^1].Trim() ?? "0";
        return last.Length > 0 ? last : "0";
    }

    /// <summary>Starts the reader process for the sockets file's `tcp listen` lines and waits until it listens; on the
    /// sockets file's `cpu`, else on <paramref name="fallbackCpu"/> (null: anywhere). Returns it and the CPU it runs on.</summary>
    private static (Process, string?) StartReaders(string socketsFile, string kernelNs, string work, bool prompt, string? fallbackCpu)
    {
        var listeners = new List<Dictionary<string, object?>>();
        string? cpu = null;
        if (File.Exists(socketsFile))
            foreach (var raw in File.ReadAllLines(socketsFile))
            {
                string line = SocketsFile.StripComment(raw);
                if (line.Length == 0) continue;
                var t = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                if (t.Length < 3 || t[0] != "tcp" || t[1] != "listen")
                    throw new NotSupportedException($"{socketsFile}: the TCP runner only starts 'tcp listen' sockets: '{line}'");
                int colon = t[2].LastIndexOf(':');
                int? rcvbuf = null;
                for (int i = 3; i + 1 < t.Length; i += 2)
                    if (t[i] == "rcvbuf") rcvbuf = int.Parse(t[i + 1], System.Globalization.CultureInfo.InvariantCulture);
                    else if (t[i] == "cpu")
                    {
                        if (cpu is { } other && other != t[i + 1]) throw new NotSupportedException($"{socketsFile}: the TCP runner's readers share one process: one `cpu`");
                        cpu = t[i + 1];
                    }
                    else throw new NotSupportedException($"{socketsFile}: option '{t[i]}' is not supported by the TCP runner");
                listeners.Add(new() { ["line"] = line, ["addr"] = t[2][..colon].Trim('[', ']'), ["port"] = int.Parse(t[2][(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture), ["rcvbuf"] = rcvbuf });
            }
        string script = Path.Combine(work, "reader.py");
        File.WriteAllText(script, ReaderScript);
        string cfg = Path.Combine(work, "reader.json");
        File.WriteAllText(cfg, JsonSerializer.Serialize(listeners));
        var psi = new ProcessStartInfo("ip") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string[] run = prompt && Proc.Exists("chrt") ? ["chrt", "-f", "10", "python3", script, cfg] : ["python3", script, cfg];
        cpu ??= fallbackCpu;
        if (cpu is not null) run = ["taskset", "-c", cpu, .. run];
        foreach (var a in new[] { "netns", "exec", kernelNs }.Concat(run)) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start the reader");
        string? ready = p.StandardOutput.ReadLine();
        if (ready != "ready")
        {
            p.WaitForExit(5000);
            throw new InvalidOperationException($"reader did not start: {ready} {p.StandardError.ReadToEnd()}");
        }
        return (p, cpu);
    }

    /// <summary>Closes the reader's stdin, its signal to print sockets.txt and exit.</summary>
    private static string StopReaders(Process p)
    {
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        string text = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(10_000) || p.ExitCode != 0)
            throw new InvalidOperationException($"reader failed: {stderr.Result}");
        p.Dispose();
        return text;
    }

    /// <summary>
    /// The applications behind `tcp listen` lines: SO_REUSEADDR, SO_RCVBUF before listen() where given, a thread per
    /// listener accepting, a thread per connection reading 64 KiB at a time until EOF (close) or ECONNRESET.
    /// Prints "ready" once every socket listens; on stdin EOF prints sockets.txt (connections in accept order).
    /// </summary>
    internal const string ReaderScript = """
import hashlib, json, socket, sys, threading
cfg = json.load(open(sys.argv[1]))
lock = threading.Lock()
socks = []
def serve(conn, rec):
    h = hashlib.sha256()
    end = 'open'
    try:
        while True:
            d = conn.recv(65536)
            if not d:
                end = 'fin'
                break
            h.update(d)
            with lock:
                rec['bytes'] += len(d)
                rec['sha'] = h.hexdigest()[:16]
    except ConnectionResetError:
        end = 'rst'
    except OSError as e:
        end = 'error ' + str(e.errno)
    conn.close()
    with lock:
        rec['end'] = end
def accept(ls, recs):
    while True:
        c, a = ls.accept()
        peer = '[%s]:%d' % a[:2] if ls.family == socket.AF_INET6 else '%s:%d' % a
        rec = {'peer': peer, 'bytes': 0, 'sha': hashlib.sha256().hexdigest()[:16], 'end': 'open'}
        with lock:
            recs.append(rec)
        threading.Thread(target=serve, args=(c, rec), daemon=True).start()
for l in cfg:
    ls = socket.socket(socket.AF_INET6 if ':' in l['addr'] else socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if l['rcvbuf'] is not None:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, l['rcvbuf'])
    ls.bind((l['addr'], l['port']))
    ls.listen(128)
    recs = []
    socks.append((l['line'], recs))
    threading.Thread(target=accept, args=(ls, recs), daemon=True).start()
print('ready', flush=True)
sys.stdin.read()
with lock:
    for line, recs in socks:
        sys.stdout.write(line + '\n')
        for r in recs:
            sys.stdout.write('  connection %s bytes %d sha256 %s end %s\n' % (r['peer'], r['bytes'], r['sha'], r['end']))
sys.stdout.flush()
""";

    /// <summary>
    /// Captures every frame of the server namespace (one ETH_P_ALL socket there, direction from the packet type) and
    /// sends the capture's frames from the arrival devices' peers at their relative times, shifting each flow's
    /// client segments into the kernel's sequence and timestamp space once its SYN-ACK is seen. Writes DEV.rx.pcap
    /// and DEV.tx.pcap (ns timestamps from the kernel's tap, made strictly increasing so rx/tx order survives a merge); prints the shifts.
    /// </summary>
    internal const string InjectorScript = """
import ctypes, json, os, select, socket, struct, sys, time
cfg = json.load(open(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)
def enter(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), 'setns ' + path)
    finally:
        os.close(fd)
home = os.open('/proc/self/ns/net', os.O_RDONLY)
enter(cfg['capture'])
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
cap.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
cap.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS: the time the frame passed the tap, not when Python read it
devs = [n for _, n in socket.if_nameindex() if n != 'lo']
# Opened here, inside the server's namespace: a /proc/self/net file shows the namespace it was opened in.
counters = {}
for n in ('snmp', 'netstat', 'snmp6'):
    try:
        counters[n] = os.open('/proc/self/net/' + n, os.O_RDONLY)
    except FileNotFoundError:
        pass
tx = []
for path, dev in cfg['targets']:
    enter(path)
    t = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    t.bind((dev, 0))
    tx.append(t)
if libc.setns(home, 0x40000000) != 0:
    raise OSError(ctypes.get_errno(), 'setns back')

def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF
def tcp_at(f):
    if len(f) >= 74 and f[12:14] == b'\x86\xdd' and f[20] == 6:
        return 54
    if len(f) < 34 or f[12:14] != b'\x08\x00' or f[23] != 6:
        return None
    ihl = (f[14] & 15) * 4
    return 14 + ihl
def addrs(f):
    if f[12:14] == b'\x86\xdd':
        return f[22:38], f[38:54]
    return f[26:30], f[30:34]
def options(f, t):
    doff = (f[t + 12] >> 4) * 4
    i, end = t + 20, t + doff
    while i < end:
        k = f[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= end or f[i + 1] < 2:
            break
        yield k, i, f[i + 1]
        i += f[i + 1]

flows = {}   # (client ip, client port, server ip, server port) -> state of the flow's current connection
log = []
captured = {}
last_ts = [0]
def take():
    while True:
        try:
            f, anc, _, addr = cap.recvmsg(1 << 18, 64, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if addr[0] == 'lo':
            continue
        ts = None
        for level, kind, val in anc:
            if level == socket.SOL_SOCKET and kind == 35 and len(val) >= 16:  # SCM_TIMESTAMPNS
                sec, nsec = struct.unpack('qq', val[:16])
                ts = sec * 1000000000 + nsec
        if not ts:
            ts = time.time_ns()
        if ts <= last_ts[0]:
            ts = last_ts[0] + 1
        last_ts[0] = ts
        d = 'tx' if addr[2] == 4 else 'rx'
        captured.setdefault((addr[0], d), []).append((ts, f))
        t = tcp_at(f)
        if d == 'tx' and t is not None and f[t + 13] & 0x12 == 0x12:
            src, dst = addrs(f)
            key = (dst, f[t + 2:t + 4], src, f[t:t + 2])
            st = flows.get(key)
            if st is not None and st['kisn'] is None:
                st['kisn'] = struct.unpack('!I', f[t + 4:t + 8])[0]
                for k, i, l in options(f, t):
                    if k == 8 and l == 10:
                        st['kts'] = struct.unpack('!I', f[i + 2:i + 6])[0]
def wait_until(deadline):
    while True:
        now = time.monotonic()
        if now >= deadline:
            take()
            return
        r, _, _ = select.select([cap], [], [], deadline - now)
        if r:
            take()

def shift_quoted(f, key, at, what):
    # The quoted server segment's seq (at offset `at`) moved into the kernel's sequence space (a quoted SYN-ACK's seq
    # is the capture's server ISN), once the flow's SYN-ACK is seen; None when the flow is unknown or never answered.
    st = flows.get(key)
    if st is None:
        return None
    deadline = time.monotonic() + 0.5
    while st['kisn'] is None and time.monotonic() < deadline:
        wait_until(min(deadline, time.monotonic() + 0.005))
    if st['kisn'] is None:
        return None
    b = bytearray(f)
    seq = struct.unpack_from('!I', b, at)[0]
    new = (seq + st['shift'][0]) & 0xFFFFFFFF if st['shift'] is not None else st['kisn']
    struct.pack_into('!I', b, at, new)
    log.append('%s quoting seq %d sent with %d' % (what, seq, new))
    return b

def rewrite_icmp6(f):
    # An ICMPv6 error quoting one of the server's segments (IPv6 header, then TCP at 102), the checksum redone.
    if len(f) < 110 or f[12:14] != b'\x86\xdd' or f[20] != 58 or f[54] >= 128 or f[68] != 6:
        return f
    b = shift_quoted(f, (f[86:102], f[104:106], f[70:86], f[102:104]), 106, 'icmpv6')
    if b is None:
        return f
    struct.pack_into('!H', b, 56, 0)
    plen = struct.unpack_from('!H', b, 18)[0]
    struct.pack_into('!H', b, 56, csum(bytes(b[22:54]) + struct.pack('!I3xB', plen, 58) + bytes(b[54:54 + plen])))
    return bytes(b)

def rewrite_icmp4(f):
    # An ICMP error quoting one of the server's segments (IPv4 headers without options, TCP at 62), the checksum redone.
    if len(f) < 70 or f[23] != 1 or f[14] != 0x45 or f[34] not in (3, 4, 5, 11, 12) or f[42] != 0x45 or f[51] != 6:
        return f
    b = shift_quoted(f, (f[58:62], f[64:66], f[54:58], f[62:64]), 66, 'icmp')
    if b is None:
        return f
    struct.pack_into('!H', b, 36, 0)
    end = 14 + struct.unpack_from('!H', b, 16)[0]
    struct.pack_into('!H', b, 36, csum(bytes(b[34:end])))
    return bytes(b)

def rewrite(f):
    t = tcp_at(f)
    if t is None:
        return rewrite_icmp4(f) if f[12:14] == b'\x08\x00' else rewrite_icmp6(f)
    src, dst = addrs(f)
    key = (src, f[t:t + 2], dst, f[t + 2:t + 4])
    flags = f[t + 13]
    seq = struct.unpack('!I', f[t + 4:t + 8])[0]
    if len(src) == 16:
        name = '[%s]:%d' % (socket.inet_ntop(socket.AF_INET6, src), struct.unpack('!H', key[1])[0])
    else:
        name = '%s:%d' % (socket.inet_ntoa(src), struct.unpack('!H', key[1])[0])
    if flags & 0x12 == 0x02:
        st = flows.get(key)
        if st is None or st['isn'] != seq:
            flows[key] = {'isn': seq, 'kisn': None, 'kts': None, 'shift': None}
        return f
    st = flows.get(key)
    if st is None:
        return f
    if st['shift'] is None:
        if not flags & 0x10:
            return f
        # The flow's first ACK: the capture's view of the server's ISN and SYN-ACK TSval.
        deadline = time.monotonic() + 0.5
        while st['kisn'] is None and time.monotonic() < deadline:
            wait_until(min(deadline, time.monotonic() + 0.005))
        cisn = (struct.unpack('!I', f[t + 8:t + 12])[0] - 1) & 0xFFFFFFFF
        cts = None
        for k, i, l in options(f, t):
            if k == 8 and l == 10:
                cts = struct.unpack('!I', f[i + 6:i + 10])[0]
        if st['kisn'] is None:
            st['shift'] = (0, 0)
            log.append('%s: no SYN-ACK from the kernel, segments sent unchanged' % name)
        else:
            st['shift'] = ((st['kisn'] - cisn) & 0xFFFFFFFF,
                           ((st['kts'] - cts) & 0xFFFFFFFF) if st['kts'] is not None and cts is not None else 0)
            log.append('%s: kernel isn %d capture isn %d shift %d; ts shift %d' % (name, st['kisn'], cisn, st['shift'][0], st['shift'][1]))
    ds, dt = st['shift']
    if ds == 0 and dt == 0:
        return f
    b = bytearray(f)
    if flags & 0x10:
        struct.pack_into('!I', b, t + 8, (struct.unpack_from('!I', b, t + 8)[0] + ds) & 0xFFFFFFFF)
    for k, i, l in options(f, t):
        if k == 8 and l == 10:
            struct.pack_into('!I', b, i + 6, (struct.unpack_from('!I', b, i + 6)[0] + dt) & 0xFFFFFFFF)
        elif k == 5:
            for j in range(i + 2, i + l - 7, 4):
                struct.pack_into('!I', b, j, (struct.unpack_from('!I', b, j)[0] + ds) & 0xFFFFFFFF)
    struct.pack_into('!H', b, t + 16, 0)
    if len(src) == 16:
        seg_end = 54 + struct.unpack_from('!H', b, 18)[0]
        pseudo = bytes(b[22:54]) + struct.pack('!I3xB', seg_end - t, 6)
    else:
        seg_end = 14 + struct.unpack_from('!H', b, 16)[0]
        pseudo = bytes(b[26:34]) + struct.pack('!BBH', 0, 6, seg_end - t)
    struct.pack_into('!H', b, t + 16, csum(pseudo + bytes(b[t:seg_end])))
    return bytes(b)

data = open(cfg['frames'], 'rb').read()
frames = []
off = 0
while off < len(data):
    ts, target, n = struct.unpack_from('<qiI', data, off); off += 16
    frames.append((ts, target, data[off:off + n])); off += n
take()
t0 = time.monotonic()
base = frames[0][0] if frames else 0
for ts, target, f in frames:
    wait_until(t0 + (ts - base) / 1e9)
    tx[target].send(rewrite(f))
    take()
wait_until(time.monotonic() + cfg['settleMs'] / 1000.0)
# The counters as the capture ends, read before anything else runs: a timer due later (a SYN-ACK's 1 s
# retransmission) or the reader's exit closing what is still open must not reach them, however slowly the
# machine gets to `nstat`.
for n, fd in counters.items():
    parts = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            break
        parts.append(b)
    with open(os.path.join(cfg['counters'], n), 'wb') as w:
        w.write(b''.join(parts))
for dev in set(devs) | {k[0] for k in captured}:
    for d in ('rx', 'tx'):
        with open(os.path.join(cfg['out'], dev + '.' + d + '.pcap'), 'wb') as w:
            w.write(struct.pack('<IHHiIII', 0xa1b23c4d, 2, 4, 0, 0, 262144, 1))
            for ts, f in captured.get((dev, d), []):
                w.write(struct.pack('<IIII', ts // 1000000000, ts % 1000000000, len(f), len(f)) + f)
print('\n'.join(log))
""";
}
