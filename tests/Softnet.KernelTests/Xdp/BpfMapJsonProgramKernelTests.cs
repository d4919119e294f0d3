using System.Text.Json;
using Softnet.KernelTests.Support;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;
using static Softnet.KernelTests.Xdp.BpfTestFrames;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// BpfMapJson against bpftool: after the same frames ran through a program here and in the kernel, `bpftool map
/// dump id N -j` of each kernel map (created without BTF, so bpftool prints hex) is the text BpfMapJson gives for
/// ours — byte for byte where both walk the keys in the same order (arrays, LPM tries), as the same set of entries
/// for hash maps, whose order follows each side's hash seed.
/// </summary>
[Trait("Category", "Kernel")]
public class BpfMapJsonProgramKernelTests
{
    private static string Sorted(string json)
    {
        using var d = JsonDocument.Parse(json);
        return string.Join("\n", d.RootElement.EnumerateArray().Select(e => e.GetRawText()).Order(StringComparer.Ordinal));
    }

    [SkippableTheory]
    [InlineData("parse_headers")]
    [InlineData("percpu_counters")]
    [InlineData("port_filter")]
    [InlineData("lpm_prefix_filter")]
    [InlineData("rate_limit")]
    [InlineData("devmap_redirect")]
    [InlineData("globals")]
    public void Bpftool_dumps_the_kernel_maps_as_BpfMapJson_dumps_ours(string program)
    {
        var why = BpfKernelCompare.SkipReason() ?? (Proc.Exists("bpftool") ? null : "bpftool is not installed");
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare(program, setup: (obj, _) =>
        {
            if (obj.Map("blocked_ports") is { } ports)
                foreach (ushort p in new ushort[] { 9, 22, 53 }) Assert.Equal(0, ports.UserUpdate(BitConverter.GetBytes(p), new byte[8], 0));
            if (obj.Map("prefixes4") is { } p4)
            {
                Assert.Equal(0, p4.UserUpdate([8, 0, 0, 0, 10, 0, 0, 0], new byte[16], 0));
                Assert.Equal(0, p4.UserUpdate([32, 0, 0, 0, 10, 0, 0, 1], [1, 0, 0, 0, .. new byte[12]], 0));
                Assert.Equal(0, p4.UserUpdate([16, 0, 0, 0, 192, 168, 0, 0], [2, 0, 0, 0, .. new byte[12]], 0));
                Assert.Equal(0, p4.UserUpdate([12, 0, 0, 0, 172, 16, 0, 0], [1, 0, 0, 0, .. new byte[12]], 0));
            }
            if (obj.Map("tx_ports") is { } tx) Assert.Equal(0, tx.UserUpdate(BitConverter.GetBytes(2u), BitConverter.GetBytes(1u), 0));
        }, clock: program == "rate_limit" ? () => 5 : null);
        foreach (var (name, frame) in Generated()) c.Run(frame, name);
        foreach (var map in c.Interp.Maps)
        {
            if (map.Type is BpfMapType.ProgArray or BpfMapType.Ringbuf) continue;
            string kernel = BpfMapJsonKernelTests.BpftoolDump(BpfSyscall.ObjectId(c.Kernel.KernelMapFd(map)));
            string ours = BpfMapJson.Dump(map);
            if (program == "rate_limit")
            {
                // The window start is each side's clock: compare the entries' keys only.
                static string Keys(string j)
                {
                    using var d = JsonDocument.Parse(j);
                    return string.Join(",", d.RootElement.EnumerateArray().Select(e => e.GetProperty("key").GetRawText()).Order(StringComparer.Ordinal));
                }
                Assert.Equal(Keys(kernel), Keys(ours));
                continue;
            }
            if (map.Type is BpfMapType.Hash or BpfMapType.PercpuHash or BpfMapType.LruHash or BpfMapType.LruPercpuHash)
                Assert.True(Sorted(kernel) == Sorted(ours), $"{program} {map.Name}:\n bpftool  {kernel}\n softnet  {ours}");
            else
                Assert.True(kernel == ours, $"{program} {map.Name}:\n bpftool  {kernel}\n softnet  {ours}");
        }
    }
}
