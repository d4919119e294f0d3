using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf.Elf;

/// <summary>
/// The C programs of Xdp/Bpf/Programs, compiled with clang-14 as users build them
/// (<c>clang-14 -O2 -g -target bpf -c</c>) into a cache folder keyed by the source's hash, so each is built once.
/// A missing clang fails the test with what to install: CI installs it (.ci/run).
/// </summary>
public static class BpfTestPrograms
{
    private static readonly string SourceDir = Path.Combine(AppContext.BaseDirectory, "Xdp", "Bpf", "Programs");
    private static readonly string CacheDir = Path.Combine(Path.GetTempPath(), "softnet-bpf-test-objects");
    public static string Clang => BpfClang.Clang;

    /// <summary>The object file built from Programs/<paramref name="name"/>.c.</summary>
    public static string Object(string name)
    {
        string src = Path.Combine(SourceDir, name + ".c");
        Assert.True(File.Exists(src), $"no test program {src}");
        try
        {
            return BpfClang.Compile(src, CacheDir);
        }
        catch (BpfClangException e)
        {
            Assert.Fail(e.Message);
            throw;
        }
    }

    public static byte[] Bytes(string name) => File.ReadAllBytes(Object(name));

    /// <summary>The helpers of an XDP program (map helpers included).</summary>
    public static BpfHelperTable MapHelpers() => Softnet.Xdp.Bpf.Helpers.BpfXdpHelpers.Table();

    /// <summary>Runs <paramref name="prog"/> on a copy of <paramref name="frame"/> with 256 bytes of headroom; returns the verdict and the frame after it.</summary>
    public static (XdpAction Action, byte[] Frame) Run(BpfProgram prog, byte[] frame, int rxQueue = 0, uint ifindex = 1, BpfEngine engine = BpfEngine.Interpreter)
    {
        var buffer = new byte[256 + frame.Length + 320];
        frame.CopyTo(buffer, 256);
        var xdp = new XdpBuff(buffer, 256, frame.Length, rxQueue, tailroom: 320);
        BpfRunResult result;
        var action = engine == BpfEngine.Jit
            ? BpfJit.Compile(prog).RunXdp(new BpfJitStack(), ref xdp, ifindex, new BpfRunContext(), prog.Options.Maps, out result)
            : new BpfInterpreter().RunXdp(prog, ref xdp, ifindex, new BpfRunContext(), prog.Options.Maps, out result);
        Assert.True(result.Ok, $"run faulted: {result.Fault} at {result.Pc}");
        return (action, xdp.Packet.ToArray());
    }

    public static ulong U64(BpfMap map, uint key)
    {
        var v = new byte[map.UserValueSize];
        Assert.True(map.UserLookup(BitConverter.GetBytes(key), v));
        return BitConverter.ToUInt64(v, 0);
    }

    /// <summary>An Ethernet / IPv4 / UDP frame to <paramref name="dport"/> with <paramref name="payload"/> bytes of data.</summary>
    public static byte[] Udp4(ushort dport, int payload = 18)
    {
        var f = new byte[14 + 20 + 8 + payload];
        byte[] dst = [0x02, 0, 0, 0, 0, 0x01], src = [0x02, 0, 0, 0, 0, 0x02];
        dst.CopyTo(f, 0);
        src.CopyTo(f, 6);
        f[12] = 0x08; f[13] = 0x00;
        f[14] = 0x45; f[16] = (byte)((20 + 8 + payload) >> 8); f[17] = (byte)(20 + 8 + payload);
        f[22] = 64; f[23] = 17;
        f[26] = 10; f[29] = 1; f[30] = 10; f[33] = 2;
        f[34] = 0x30; f[35] = 0x39; f[36] = (byte)(dport >> 8); f[37] = (byte)dport;
        f[38] = (byte)((8 + payload) >> 8); f[39] = (byte)(8 + payload);
        return f;
    }
}
