using Softnet.Cli;
using Xunit;

namespace Softnet.Tests.Cli;

/// <summary>pod-vs-native's CPU model: calibrated on the baseline's kernel runs, it gives back their CPU time per byte,
/// and it moves, adds and divides the parts each remedy changes.</summary>
public class PodVsNativeModelTests
{
    private const double SoftnetNative = 0.6, SoftnetPod = 1.2, Copy = 0.1;
    private static readonly PodVsNativeSetting Baseline = PodVsNativeExperiment.Settings.Single(s => s.Name == "baseline");

    /// <summary>Native: client 1.3 ns/B of which 0.7 softirq (sender 0.6), server 1.0; pod: client 2.8 of which 2.2
    /// softirq (sender 0.6), server 1.6.</summary>
    /// <param name="nativeCpu1">The share of Softnet's baseline native work on the server's CPU (its reads' ACKs).</param>
    /// <param name="podCpu1">The same on the pod path.</param>
    private static PodVsNativeModel Model(double nativeCpu1 = 0, double podCpu1 = 0)
    {
        var native = new KernelSample(6e9, 1.3, 1.0, 0, 0, 0.7, default, default);
        var pod = new KernelSample(3e9, 2.8, 1.6, 0, 0, 2.2, default, default);
        return PodVsNativeModel.Calibrate(new KernelRuns(Baseline, [native], [pod]), SoftnetNative, SoftnetPod, nativeCpu1, podCpu1, Copy);
    }

    [Fact]
    public void The_baseline_calibration_gives_back_the_baselines_cpu_time_per_byte()
    {
        var m = Model();
        Assert.Equal(0.7 / 0.6, m.NativeFactor, 6);
        Assert.Equal((2.8 - 0.6 - 0.7) / 0.6, m.ExtraFactor, 6);
        GivesBackTheBaseline(m, 0, 0);
    }

    /// <summary>The baseline predicted with Softnet's CPU 1 shares gives back the kernel runs <see cref="Model"/> took.</summary>
    private static void GivesBackTheBaseline(PodVsNativeModel m, double nativeCpu1, double podCpu1)
    {
        var native = m.NsPerByte(Baseline, false, SoftnetNative, SoftnetNative, nativeCpu1, nativeCpu1, 1, 0);
        var pod = m.NsPerByte(Baseline, true, SoftnetNative, SoftnetPod, nativeCpu1, podCpu1, 1, 0);
        Assert.Equal(1.3, native.Cpu0, 6);
        Assert.Equal(1.0, native.Cpu1, 6);
        Assert.Equal(2.8, pod.Cpu0, 6);
        Assert.Equal(1.6, pod.Cpu1, 6);
    }

    /// <summary>Softnet ran a quarter of native's work (0.15 of 0.6 ns/B) and 0.36 of the pod's 1.2 on the server's CPU:
    /// the ACKs its reads send and their way back. The factors come from CPU 0's rest, the readers' own work is what of
    /// the server's CPU that work leaves, and the calibration still gives the baseline back.</summary>
    [Fact]
    public void Softnets_work_on_the_servers_cpu_is_taken_out_of_the_readers_own()
    {
        var m = Model(0.25, 0.3);
        Assert.Equal(0.7 / 0.45, m.NativeFactor, 6);
        Assert.Equal((2.8 - 0.6 - 0.7) / (0.84 - 0.45), m.ExtraFactor, 6);
        Assert.Equal(1.0 - m.NativeFactor * 0.15, m.ReaderNative, 6);
        Assert.Equal(1.6 - m.NativeFactor * 0.15 - m.ExtraFactor * 0.21, m.ReaderPod, 6);
        GivesBackTheBaseline(m, 0.25, 0.3);
        // With the server on the softirq CPU, Softnet runs its ACKs there too: CPU 0 carries the baseline's two CPUs.
        var shared = PodVsNativeExperiment.Settings.Single(s => s.ReaderWithSoftirq);
        Assert.Equal(1.3 + 1.0, m.NsPerByte(shared, false, SoftnetNative, SoftnetNative, 0, 0, 1, 0).Cpu0, 6);
    }

    /// <summary>Woken from its own CPU (Softnet's replay ran the socket's softirq work there) the reader reads a batch:
    /// its copy stays per byte, its per-read work spreads to nothing; half its wake-ups local, half that work.</summary>
    [Fact]
    public void A_reader_woken_from_its_own_cpu_pays_its_copy_and_not_its_per_read_work()
    {
        var m = Model();
        var shared = PodVsNativeExperiment.Settings.Single(s => s.ReaderWithSoftirq);
        Assert.Equal(1.3 + Copy, m.NsPerByte(shared, false, SoftnetNative, SoftnetNative, 0, 0, 1, 1).Cpu0, 6);
        Assert.Equal(2.8 + Copy, m.NsPerByte(shared, true, SoftnetNative, SoftnetPod, 0, 0, 1, 1).Cpu0, 6);
        var rfs = PodVsNativeExperiment.Settings.Single(s => s.Rfs);
        Assert.Equal(m.NativeFactor * 0.54 + Copy + (1.0 - Copy) / 2, m.NsPerByte(rfs, false, SoftnetNative, SoftnetNative, 0.9, 0.9, 1, 0.5).Cpu1, 6);
    }

    [Fact]
    public void Rfs_moves_node_Bs_receive_to_the_readers_cpu_and_leaves_the_pods_own_stages_on_cpu_0()
    {
        var m = Model();
        var rfs = PodVsNativeExperiment.Settings.Single(s => s.Rfs);
        // Softnet ran 90% of native on CPU 1, and of the pod's path just that same work (0.54 of 1.2 ns/B).
        var pod = m.NsPerByte(rfs, true, SoftnetNative, SoftnetPod, 0.9, 0.54 / 1.2, 1, 0);
        Assert.Equal(0.6 + m.NativeFactor * 0.06 + m.ExtraFactor * 0.6, pod.Cpu0, 6);
        Assert.Equal(m.NativeFactor * 0.54 + 1.6, pod.Cpu1, 6);
    }

    [Fact]
    public void A_reader_on_the_softirq_cpu_brings_its_work_there_and_gro_divides_its_per_skb_part()
    {
        var m = Model();
        var shared = PodVsNativeExperiment.Settings.Single(s => s.ReaderWithSoftirq);
        var native = m.NsPerByte(shared, false, SoftnetNative, SoftnetNative, 0, 0, 1, 0);
        Assert.Equal(1.3 + 1.0, native.Cpu0, 6);
        Assert.Equal(0, native.Cpu1, 6);
        var gro = PodVsNativeExperiment.Settings.Single(s => s.Gro);
        Assert.Equal(Copy + (1.0 - Copy) / 4, m.NsPerByte(gro, false, 0.4, 0.4, 0, 0, 4, 0).Cpu1, 6);
    }
}
