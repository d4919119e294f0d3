using System.Buffers.Binary;
using System.Text;

namespace Softnet.KernelTests.Support;

// What this harness relies on, checked on Linux 6.18 (HZ=250, CONFIG_VLAN_8021Q not set), veth pair between
// two namespaces, frames injected with AF_PACKET on the tx end and read with AF_PACKET on the rx end:
//
// * `ethtool -K rxdev gro on` alone switches veth to NAPI (no XDP program, no `threaded` needed), BUT veth only
//   hands an skb to its NAPI/GRO path when the *sending* device has no TSO (veth_skb_is_eligible_for_gro):
//   with the default tx features every frame bypasses GRO. So the tx end gets `ethtool -K txdev tso off`.
// * gro_flush_timeout=0 (the default): each AF_PACKET send schedules and runs the rx NAPI at once, one frame per
//   poll, and the poll end flushes GRO: nothing merges. With gro_flush_timeout=T and napi_defer_hard_irqs=D>=1,
//   napi_complete_done keeps NAPI "scheduled" and arms a T timer, so the rest of a burst piles up in veth's
//   ptr_ring (256 entries: a burst must stay below that) and is polled in one pass; GRO holds it until the
//   deferred polls run out (about (D+1)*T), then flushes everything. We use T=15 ms, D=1 and 50 ms between bursts.
// * The primer (a non-IP EtherType 0x88b5 frame sent first in every burst) is polled alone, is not held by GRO,
//   and starts the deferral, so the whole burst that follows reaches GRO in one pass. With D>=1 the first burst
//   frame would do the same job; with D=0 the primer is what makes bursts merge at all. We keep it anyway: it
//   carries the case and burst number, so one capture can be cut back into cases. Primers are removed from results.
// * veth gives no flow hash (skb->hash = 0): every flow lands in GRO bucket 0, so flushes go oldest flow first
//   (seen: flows B,A,A,B,A come out B then A), and more than 8 held flows evict the oldest (MAX_GRO_SKBS).
// * A merged TCP frame carries the partial checksum (the folded pseudo-header sum, not complemented, as
//   tcp_gro_complete leaves it for CHECKSUM_PARTIAL); its IPv4 header checksum is recomputed. A frame that was
//   held but never merged (count 1) comes out with its original bytes.
// * A bad TCP checksum (software-validated: veth delivers CHECKSUM_NONE) is not merged and is delivered at once,
//   *before* the same flow's held segments, which stay held.
// * VLAN-tagged frames are never merged (no 802.1Q GRO in this kernel). The stack untags them before the packet
//   taps, so the receiver re-inserts the tag from PACKET_AUXDATA (as libpcap does) to return the frame as sent.
// * IPv6 frames are injected, merged and captured with net.ipv6.conf.all.disable_ipv6=1 in both namespaces
//   (GRO's IPv6 offload is global, not per device), so IPv6 is disabled to keep RS/DAD frames out.
// * A flow merges up to 64 KB (45 x 1448-byte segments = 65160 bytes of payload); the next segment starts anew.
//   The limit is IP total length 65535 (v4: 65495 bytes of TCP payload merge, one more byte does not; v6: 65475).
// * A merge by frag_list (AF_PACKET heads are not page frags) moves the segment's socket charge onto the held skb,
//   so the sender's send buffer stays charged until GRO flushes: with 9014-byte frames the default wmem let 17
//   through and then blocked the sender until the flush timer fired, splitting a burst. The sender's buffer is
//   forced large (SO_SNDBUFFORCE) so a burst never waits on GRO.
// * Jumbo frames (MTU 9000 on both ends): the same 64 KB limit merges 7 segments of 8948 bytes (v4 + timestamps).
// * Also seen (recorded per case in kernel-gro.json): a window change flushes (the flag word compared by
//   tcp_gro_receive includes the window); FIN and PSH join the merge and end it; SYN/RST/URG/CWR/ECE segments
//   stand alone; frames GRO passes over (VLAN, fragments, bad checksums) are delivered before the held flows.

/// <summary>Timing knobs of the kernel run (see the notes at the top of this file).</summary>
public sealed record KernelGroOptions
{
    /// <summary>/sys/class/net/DEV/gro_flush_timeout on the rx device, in nanoseconds.</summary>
    public long GroFlushTimeoutNs { get; init; } = 15_000_000;

    /// <summary>/sys/class/net/DEV/napi_defer_hard_irqs on the rx device.</summary>
    public int NapiDeferHardIrqs { get; init; } = 1;

    /// <summary>Pause after each burst; must exceed (defer + 1) * flush timeout so GRO has flushed.</summary>
    public int BurstGapMs { get; init; } = 50;
}

/// <summary>
/// Runs frames through the real kernel's GRO: two namespaces joined by a veth pair, GRO on at the receiving end,
/// frames injected burst by burst on the other end, and the frames the receiving device delivers read back.
/// </summary>
public static class KernelGro
{
    /// <summary>The veth MTU on both ends: room for the jumbo cases' frames.</summary>
    public const int VethMtu = 9000;

    /// <summary>MAC address given to the receiving veth end; test frames are addressed to it.</summary>
    public static readonly byte[] RxMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

    /// <summary>MAC address given to the sending veth end.</summary>
    public static readonly byte[] TxMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

    /// <summary>EtherType of the primer frames (IEEE local experimental 1).</summary>
    public const ushort PrimerEtherType = 0x88B5;

    /// <summary>Null when the kernel run can work here; otherwise the reason to skip.</summary>
    public static string? Unavailable() => Netns.Unavailable("ethtool", "python3", "sysctl");

    /// <summary>Builds a topology, runs the bursts, tears it down.</summary>
    public static List<byte[]> Run(IReadOnlyList<IReadOnlyList<byte[]>> bursts, KernelGroOptions? options = null)
    {
        using var topo = KernelGroTopology.Create(options);
        return topo.Run(bursts);
    }

    /// <summary>True for the primer frames this harness adds.</summary>
    /// <summary>
    /// Whether the running kernel registers vlan_gro_receive (CONFIG_VLAN_8021Q): the 8021q module is loaded
    /// or built in. Softnet follows the kernel's source by default; the comparison mirrors this machine.
    /// </summary>
    public static bool HasVlanGro => Directory.Exists("/proc/net/vlan") || Directory.Exists("/sys/module/8021q");

    public static bool IsPrimer(ReadOnlySpan<byte> frame)
        => frame.Length >= 14 + Magic.Length && BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == PrimerEtherType
           && frame.Slice(14, Magic.Length).SequenceEqual(Magic);

    internal static ReadOnlySpan<byte> Magic => "SNGRO"u8;

    internal static byte[] Primer(int caseIndex, int burstIndex)
    {
        var f = new byte[60];
        RxMac.CopyTo(f, 0);
        TxMac.CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), PrimerEtherType);
        Magic.CopyTo(f.AsSpan(14));
        BinaryPrimitives.WriteInt32BigEndian(f.AsSpan(14 + Magic.Length), caseIndex);
        BinaryPrimitives.WriteInt32BigEndian(f.AsSpan(18 + Magic.Length), burstIndex);
        return f;
    }

    internal static int PrimerCase(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadInt32BigEndian(frame[(14 + Magic.Length)..]);

    /// <summary>
    /// The injector/receiver, run with python3 inside the rx namespace: it opens the receive socket there,
    /// setns()es into the tx namespace for the send socket (a socket stays in the namespace it was made in),
    /// then sends each burst back to back and keeps reading during the pause after it.
    /// Input: [u32 n][u32 len, bytes]*n per burst; output: [u32 len, bytes] per received frame (little endian).
    /// </summary>
    internal const string InjectorScript = """
import ctypes, os, select, socket, struct, sys, time
txns, txdev, rxdev, inp, outp, gap = sys.argv[1:7]
gap = float(gap) / 1000.0
libc = ctypes.CDLL(None, use_errno=True)
SOL_PACKET, PACKET_AUXDATA = 263, 8
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
rx.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE: hold every frame until read
rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
rx.bind((rxdev, 0))
fd = os.open(txns, os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:
    raise OSError(ctypes.get_errno(), 'setns ' + txns)
os.close(fd)
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
tx.setsockopt(socket.SOL_SOCKET, 32, 256 << 20)  # SO_SNDBUFFORCE: GRO keeps held frames charged to this socket
tx.bind((txdev, 0))
out = open(outp, 'wb')
def take():
    f, anc, flags, addr = rx.recvmsg(1 << 18, socket.CMSG_SPACE(32))
    if flags & socket.MSG_TRUNC:
        raise RuntimeError('frame truncated')
    if addr[2] == 4:  # PACKET_OUTGOING
        return
    for lvl, typ, d in anc:
        if lvl == SOL_PACKET and typ == PACKET_AUXDATA:
            status, _, _, _, _, tci, tpid = struct.unpack_from('IIIHHHH', d)
            if tci or status & 0x10:  # TP_STATUS_VLAN_VALID: the stack took the tag off
                if not status & 0x40:  # TP_STATUS_VLAN_TPID_VALID
                    tpid = 0x8100
                f = f[:12] + struct.pack('!HH', tpid, tci) + f[12:]
    out.write(struct.pack('<I', len(f)) + f)
def drain(wait, quiet):
    deadline = time.monotonic() + wait
    while True:
        left = wait if quiet else deadline - time.monotonic()
        r, _, _ = select.select([rx], [], [], max(left, 0))
        if not r:
            return
        take()
data = open(inp, 'rb').read()
off = 0
while off < len(data):
    n, = struct.unpack_from('<I', data, off); off += 4
    frames = []
    for _ in range(n):
        l, = struct.unpack_from('<I', data, off); off += 4
        frames.append(data[off:off + l]); off += l
    for f in frames:
        tx.send(f)
    drain(gap, False)
drain(0.25, True)
out.close()
""";
}

/// <summary>The two namespaces and the veth pair, reusable for many runs; deleted on Dispose.</summary>
public sealed class KernelGroTopology : IDisposable
{
    public const string TxDev = "sngro-tx";
    public const string RxDev = "sngro-rx";

    private readonly Netns _tx;
    private readonly Netns _rx;
    private readonly string _dir;

    public KernelGroOptions Options { get; }

    public string TxNamespace => _tx.Name;
    public string RxNamespace => _rx.Name;

    private KernelGroTopology(Netns tx, Netns rx, KernelGroOptions options, string dir)
    {
        _tx = tx;
        _rx = rx;
        Options = options;
        _dir = dir;
    }

    public static KernelGroTopology Create(KernelGroOptions? options = null)
    {
        options ??= new KernelGroOptions();
        Netns? tx = null, rx = null;
        string dir = Directory.CreateTempSubdirectory("softnet-kgro-").FullName;
        try
        {
            tx = Netns.Create("sn-gro-tx");
            rx = Netns.Create("sn-gro-rx");
            // Before the link exists, so it never sends router solicitations or DAD probes.
            tx.DisableIpv6();
            rx.DisableIpv6();
            Netns.CreateVeth(tx, TxDev, rx, RxDev);
            tx.Check("ip", "link", "set", TxDev, "address", Mac(KernelGro.TxMac));
            rx.Check("ip", "link", "set", RxDev, "address", Mac(KernelGro.RxMac));
            // Jumbo MTU on both ends: room for the jumbo cases' 9014-byte frames (and 1448-byte segments over IPv6
            // with VLAN tags); GRO's limits do not depend on the MTU.
            tx.Check("ip", "link", "set", TxDev, "mtu", KernelGro.VethMtu.ToString());
            rx.Check("ip", "link", "set", RxDev, "mtu", KernelGro.VethMtu.ToString());
            // veth skips its NAPI (and so GRO) for skbs from a TSO-capable sender.
            tx.Check("ethtool", "-K", TxDev, "tso", "off");
            rx.Check("ethtool", "-K", RxDev, "gro", "on");
            rx.WriteFile($"/sys/class/net/{RxDev}/gro_flush_timeout", options.GroFlushTimeoutNs.ToString());
            rx.WriteFile($"/sys/class/net/{RxDev}/napi_defer_hard_irqs", options.NapiDeferHardIrqs.ToString());
            string features = rx.Check("ethtool", "-k", RxDev);
            if (!features.Contains("generic-receive-offload: on"))
                throw new InvalidOperationException($"GRO did not turn on for {RxDev}:\n{features}");
            File.WriteAllText(Path.Combine(dir, "inject.py"), KernelGro.InjectorScript);
            return new KernelGroTopology(tx, rx, options, dir);
        }
        catch
        {
            rx?.Dispose();
            tx?.Dispose();
            Directory.Delete(dir, true);
            throw;
        }
    }

    /// <summary>Runs one case: each burst is sent back to back, then the harness pauses.</summary>
    public List<byte[]> Run(IReadOnlyList<IReadOnlyList<byte[]>> bursts) => RunMany([bursts])[0];

    /// <summary>Runs many cases in one injector process; returns, per case, the frames the rx device delivered
    /// (primers removed), in delivery order.</summary>
    public List<List<byte[]>> RunMany(IReadOnlyList<IReadOnlyList<IReadOnlyList<byte[]>>> cases)
    {
        string input = Path.Combine(_dir, "in.bin");
        string output = Path.Combine(_dir, "out.bin");
        using (var w = new BinaryWriter(File.Create(input)))
        {
            for (int c = 0; c < cases.Count; c++)
            {
                for (int b = 0; b < cases[c].Count; b++)
                {
                    var burst = cases[c][b];
                    if (burst.Count >= 250)
                        throw new ArgumentException($"case {c} burst {b}: {burst.Count} frames overflow veth's 256-entry ring");
                    w.Write(burst.Count + 1);
                    var primer = KernelGro.Primer(c, b);
                    w.Write(primer.Length);
                    w.Write(primer);
                    foreach (var f in burst)
                    {
                        w.Write(f.Length);
                        w.Write(f);
                    }
                }
            }
        }

        int totalBursts = cases.Sum(c => c.Count);
        int timeoutMs = 30_000 + totalBursts * (Options.BurstGapMs + 50);
        var (exit, _, err) = _rx.ExecTimed(timeoutMs, "python3", Path.Combine(_dir, "inject.py"), _tx.Path, TxDev, RxDev, input, output,
            Options.BurstGapMs.ToString());
        if (exit != 0)
            throw new InvalidOperationException($"injector failed ({exit}): {err.Trim()}");

        var results = new List<List<byte[]>>(cases.Count);
        for (int c = 0; c < cases.Count; c++) results.Add([]);
        var data = File.ReadAllBytes(output);
        int current = -1;
        for (int off = 0; off < data.Length;)
        {
            int len = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(off));
            var frame = data.AsSpan(off + 4, len).ToArray();
            off += 4 + len;
            if (KernelGro.IsPrimer(frame))
            {
                current = KernelGro.PrimerCase(frame);
                continue;
            }
            if (current >= 0 && current < cases.Count)
                results[current].Add(frame);
        }
        return results;
    }

    private static string Mac(byte[] mac) => string.Join(':', mac.Select(b => b.ToString("x2")));

    public void Dispose()
    {
        _rx.Dispose();
        _tx.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
