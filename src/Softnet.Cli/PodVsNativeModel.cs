using System.Globalization;

namespace Softnet.Cli;

/// <summary>
/// The CPU model behind pod-vs-native's predictions. A path's throughput is bounded by its busier CPU; each CPU's time
/// per payload byte is its own share of Softnet's replay of the setting, as Softnet places the work on its virtual CPUs
/// (the client's softirq on CPU 0; on CPU 1, the iperf3 server's, what RPS/RFS move there and what the server's reads
/// send: over veth a frame goes up on the CPU that transmitted it, so the ACKs recvmsg sends (tcp_cleanup_rbuf →
/// tcp_send_ack) and their whole way back through node B's egress, the wire, node A and, on the pod path, cni0 and the
/// pod's veth to the client's socket run on the server's CPU), plus
/// <list type="bullet">
/// <item>CPU 0: the sender's own work (tcp_sendmsg down to the first veth_xmit);</item>
/// <item>the server's CPU: the reader's own work (recvmsg's copy to user per byte, the rest per read: a read per skb,
/// so divided by GRO's merge ratio, where the reader is woken from another CPU; nothing per byte where Softnet's replay
/// wakes it from its own, whose softirq work then runs first and leaves it a batch to read), which Softnet's replay
/// does not time. The rest holds the socket backlog too: segments that arrive
/// while the reader owns the socket (sock_owned_by_user) wait in it and go through tcp_v4_do_rcv at release_sock on the
/// reader's CPU, with the ACKs they send. This replay gives reads no virtual time (no --reader-ns-per-*), so its
/// reader never holds the socket (TcpBacklog models that only for readers that take time); it reads once per softirq
/// round (ReplayOptions.ReadersPerRound), so TCP leaves the ACKs to its reads (tcp_cleanup_rbuf) and Softnet runs
/// them and their way back on the reader's CPU: 13-21 % of the baseline's work on CPU 1, with GRO 30 % (a reader after
/// every frame kept the window growing, softirq sent them from CPU 0 and left 1 % there).</item>
/// </list>
/// Softnet's time on a CPU is turned into the kernel's by two factors: one for the stages native→native crosses
/// (<see cref="NativeFactor"/>; the pod path's share of a CPU up to native's own there) and one for what the pod's frames
/// and ACKs cross besides (veth, cni0, forwarding, conntrack and MASQUERADE on node A, <see cref="ExtraFactor"/>):
/// Softnet's relative cost of the two is not the kernel's. The factors, the senders' and the readers' own work are
/// fitted on the baseline's kernel runs only (its CPU time per byte, not its throughput, which a loaded machine moves
/// about): the factors on CPU 0, the readers' own work as what of the server's CPU Softnet's work there leaves. Every
/// other setting is predicted from Softnet's own figures for it.
/// </summary>
public sealed record PodVsNativeModel(double SenderNative, double SenderPod, double NativeFactor, double ExtraFactor, double ReaderNative, double ReaderPod,
    double CopyNsPerByte)
{
    /// <summary>Without a kernel run: Softnet's own times, no sender, the reader's cost a memcpy per byte.</summary>
    public static PodVsNativeModel Uncalibrated(double memcpyNsPerByte) => new(0, 0, 1, 1, memcpyNsPerByte, memcpyNsPerByte, memcpyNsPerByte);

    /// <summary>The model from the baseline's kernel runs (reader on CPU 1) and Softnet's baseline figures (its total
    /// time per byte on each path and the share of it on CPU 1): the senders as measured; NativeFactor from native's CPU 0
    /// (sender + factor × Softnet's native CPU 0), ExtraFactor from the pod's (sender + NativeFactor × that + factor ×
    /// the pod's CPU 0 beyond it); each reader's own work as its CPU 1 less the factors × Softnet's CPU 1 there.</summary>
    public static PodVsNativeModel Calibrate(KernelRuns baseline, double softnetNative, double softnetPod, double nativeCpu1Share, double podCpu1Share,
        double memcpyNsPerByte)
    {
        double sn = baseline.Of(false, x => x.SenderNsPerByte), sp = baseline.Of(true, x => x.SenderNsPerByte);
        double cn = baseline.Of(false, x => x.Cpu0NsPerByte(false)), cp = baseline.Of(true, x => x.Cpu0NsPerByte(false));
        double n0 = (1 - nativeCpu1Share) * softnetNative, n1 = nativeCpu1Share * softnetNative;
        double p0 = (1 - podCpu1Share) * softnetPod, p1 = podCpu1Share * softnetPod;
        if (n0 <= 0 || p0 <= n0 || cn <= sn) return Uncalibrated(memcpyNsPerByte);
        double native = (cn - sn) / n0;
        double extra = Math.Max(0, (cp - sp - native * n0) / (p0 - n0));
        double readerNative = Math.Max(0, baseline.Of(false, x => x.Cpu1NsPerByte(false)) - native * n1);
        double readerPod = Math.Max(0, baseline.Of(true, x => x.Cpu1NsPerByte(false)) - native * Math.Min(n1, p1) - extra * Math.Max(0, p1 - n1));
        return new(sn, sp, native, extra, readerNative, readerPod, memcpyNsPerByte);
    }

    /// <summary>Each CPU's predicted time per byte on one path of a setting.</summary>
    /// <param name="softnetNative">Softnet's native→native time per byte in this setting.</param>
    /// <param name="softnetPath">Softnet's time per byte on this path (= softnetNative for native).</param>
    /// <param name="nativeCpu1Share">The share of Softnet's native→native work that ran on CPU 1 (the server's reads
    /// and their ACKs, and what RPS/RFS moved there).</param>
    /// <param name="pathCpu1Share">The share of this path's work that ran on CPU 1.</param>
    /// <param name="groMergeRatio">Softnet's segments per skb reaching the socket on this path (1 without GRO).</param>
    /// <param name="localWakeShare">The share of the reader's wake-ups Softnet's replay issued on the reader's own CPU
    /// (<see cref="Transport.Sock.WakeStats"/>): the socket's softirq work ran there.</param>
    public (double Cpu0, double Cpu1) NsPerByte(PodVsNativeSetting s, bool pod, double softnetNative, double softnetPath, double nativeCpu1Share, double pathCpu1Share,
        double groMergeRatio, double localWakeShare)
    {
        // CPU by CPU: the path's work there up to native's own there is native-stage work, the rest the pod's extra.
        double n1 = nativeCpu1Share * softnetNative, n0 = softnetNative - n1;
        double p1 = pathCpu1Share * softnetPath, p0 = softnetPath - p1;
        double work0 = NativeFactor * Math.Min(n0, p0) + ExtraFactor * Math.Max(0, p0 - n0);
        double work1 = NativeFactor * Math.Min(n1, p1) + ExtraFactor * Math.Max(0, p1 - n1);
        double sender = pod ? SenderPod : SenderNative;
        // The reader's copy is per byte; the rest of its own work (the wake-up, recvmsg, the ACK its read sends, the
        // socket backlog on release_sock) is per read, a read per skb the wake-up brought when the reader is woken from
        // another CPU (an IPI: it runs beside the softirq work, as in the baseline it is fitted on), and GRO hands the
        // socket fewer skbs. Woken from its own CPU (the socket's softirq work runs there: the reader shares the
        // softirq CPU, or RFS brought the softirq to the reader) the reader runs only once that work is done
        // (softirq before tasks, ksoftirqd past the budget), so it reads what all of it queued in one read, and the
        // segments that arrive while it reads wait in the socket backlog, one ACK for many: the per-read work spreads
        // over a batch and counts for nothing per byte.
        double own = pod ? ReaderPod : ReaderNative, copy = Math.Min(CopyNsPerByte, own);
        double reader = copy + (own - copy) / Math.Max(1, groMergeRatio) * (1 - Math.Clamp(localWakeShare, 0, 1));
        // The reader's own work goes where the reader runs; what it sends, Softnet already placed there.
        return s.ReaderWithSoftirq ? (sender + work0 + reader, work1) : (sender + work0, work1 + reader);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"sender native {SenderNative:F3} pod {SenderPod:F3} ns/B; kernel ns per Softnet ns: native stages {NativeFactor:F3}, the pod's extra stages {ExtraFactor:F3}; reader's own work native {ReaderNative:F3} pod {ReaderPod:F3} ns/B (copy {CopyNsPerByte:F3}, the rest per skb)");
}
