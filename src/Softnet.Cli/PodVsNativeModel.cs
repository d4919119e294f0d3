using System.Globalization;

namespace Softnet.Cli;

/// <summary>
/// The CPU model behind pod-vs-native's predictions. A path's throughput is bounded by its busier CPU; each CPU's time
/// per payload byte is
/// <list type="bullet">
/// <item>CPU 0 (the iperf3 client's): the sender's own work (tcp_sendmsg down to the first veth_xmit), plus the
/// receive work over veth, which runs in softirq on the transmitting CPU, but the share RPS/RFS move to CPU 1;</item>
/// <item>CPU 1 (the server's): that moved share, plus the reader's work (copy to user, the socket backlog processed on
/// release_sock, the ACKs it sends and, on the pod path, their way back through node A), as the baseline measured it,
/// its part per skb divided by GRO's merge ratio; on CPU 0 instead where it shares the softirq CPU.</item>
/// </list>
/// The receive work is Softnet's CPU time per byte of each stage group turned into the kernel's by two factors: one for
/// what native→native crosses (node B's receive, <see cref="NativeFactor"/>) and one for what the pod's frames cross
/// besides (veth, cni0, forwarding, conntrack and MASQUERADE on node A, <see cref="ExtraFactor"/>): Softnet's relative
/// cost of the two is not the kernel's. The factors, the senders' and the readers' work are measured or fitted on the
/// baseline's kernel runs only (its CPU time per byte, not its throughput, which a loaded machine moves about); every
/// other setting is predicted from Softnet's own figures for it.
/// </summary>
public sealed record PodVsNativeModel(double SenderNative, double SenderPod, double NativeFactor, double ExtraFactor, double ReaderNative, double ReaderPod,
    double CopyNsPerByte)
{
    /// <summary>Without a kernel run: Softnet's own times, no sender, the reader's cost a memcpy per byte.</summary>
    public static PodVsNativeModel Uncalibrated(double memcpyNsPerByte) => new(0, 0, 1, 1, memcpyNsPerByte, memcpyNsPerByte, memcpyNsPerByte);

    /// <summary>The model from the baseline's kernel runs (reader on CPU 1) and Softnet's baseline figures: the senders
    /// and readers as measured; NativeFactor from native's CPU 0 (sender + factor × Softnet native), ExtraFactor from the
    /// pod's (sender + NativeFactor × Softnet native + factor × Softnet's extra).</summary>
    public static PodVsNativeModel Calibrate(KernelRuns baseline, double softnetNative, double softnetPod, double memcpyNsPerByte)
    {
        double sn = baseline.Of(false, x => x.SenderNsPerByte), sp = baseline.Of(true, x => x.SenderNsPerByte);
        double cn = baseline.Of(false, x => x.Cpu0NsPerByte(false)), cp = baseline.Of(true, x => x.Cpu0NsPerByte(false));
        if (softnetNative <= 0 || softnetPod <= softnetNative || cn <= sn) return Uncalibrated(memcpyNsPerByte);
        double native = (cn - sn) / softnetNative;
        double extra = Math.Max(0, (cp - sp - native * softnetNative) / (softnetPod - softnetNative));
        return new(sn, sp, native, extra, baseline.Of(false, x => x.Cpu1NsPerByte(false)), baseline.Of(true, x => x.Cpu1NsPerByte(false)),
            memcpyNsPerByte);
    }

    /// <summary>Each CPU's predicted time per byte on one path of a setting.</summary>
    /// <param name="softnetNative">Softnet's native→native time per byte in this setting (node B's receive).</param>
    /// <param name="softnetPath">Softnet's time per byte on this path (= softnetNative for native).</param>
    /// <param name="nativeCpu1Share">The share of Softnet's native→native work that ran on CPU 1 (RPS/RFS moving node B's
    /// receive there).</param>
    /// <param name="pathCpu1Share">The share of this path's work that ran on CPU 1.</param>
    /// <param name="groMergeRatio">Softnet's segments per skb reaching the socket on this path (1 without GRO).</param>
    public (double Cpu0, double Cpu1) NsPerByte(PodVsNativeSetting s, bool pod, double softnetNative, double softnetPath, double nativeCpu1Share, double pathCpu1Share,
        double groMergeRatio)
    {
        // Stage by stage: what moved to CPU 1 of node B's receive is native-stage work; whatever else of the path moved
        // there is extra-stage work (the pod's frames' own stages stay on CPU 0 but for that).
        double extra = Math.Max(0, softnetPath - softnetNative);
        double extraOnCpu1 = Math.Clamp(pathCpu1Share * softnetPath - nativeCpu1Share * softnetNative, 0, extra);
        double work0 = NativeFactor * (1 - nativeCpu1Share) * softnetNative + ExtraFactor * (extra - extraOnCpu1);
        double work1 = NativeFactor * nativeCpu1Share * softnetNative + ExtraFactor * extraOnCpu1;
        double sender = pod ? SenderPod : SenderNative;
        // The reader's copy is per byte; the rest of its work (the socket backlog on release_sock, the ACKs it sends
        // and their way back) is per skb, and GRO hands the socket fewer of them.
        double measured = pod ? ReaderPod : ReaderNative, copy = Math.Min(CopyNsPerByte, measured);
        double reader = copy + (measured - copy) / Math.Max(1, groMergeRatio);
        // The reader's work goes where the reader runs, all of it: with it on the softirq CPU the kernel's CPU 0 carried
        // nearly the sum of the baseline's two CPUs (pod 4.1 against 2.8 + 1.7 ns/B; native 1.9 against 1.3 + 1.1, the
        // rest the price of running apart), and under RFS its CPU 1 at least the moved receive plus most of it.
        return s.ReaderWithSoftirq ? (sender + work0 + reader, work1) : (sender + work0, work1 + reader);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"sender native {SenderNative:F3} pod {SenderPod:F3} ns/B; kernel ns per Softnet ns: native stages {NativeFactor:F3}, the pod's extra stages {ExtraFactor:F3}; reader native {ReaderNative:F3} pod {ReaderPod:F3} ns/B (copy {CopyNsPerByte:F3}, the rest per skb)");
}
