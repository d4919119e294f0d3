using System.Buffers.Binary;
using CsCheck;
using Softnet.Tests.Xdp.Bpf.Elf;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Elf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf;

/// <summary>
/// The JIT's map lookups with the map known at the call (array and per-CPU array computed inline as the kernel's
/// map_gen_lookup does, other maps' lookups called directly, map values then read through the region cache) against
/// the interpreter calling the helper: the same verdicts, frames and, afterwards, the same contents of every map.
/// </summary>
public class BpfJitMapTests
{
    private const int Cpus = 2;

    /// <summary>jit_maps.o loaded (its own maps), the LPM trie and the key-in-a-value array filled the same way each time.</summary>
    private static (BpfObject Obj, BpfProgram Prog) Load()
    {
        var obj = BpfObject.Load(BpfTestPrograms.Bytes("jit_maps"), "jit_maps.o", Cpus);
        var prog = obj.LoadProgram(null, BpfTestPrograms.MapHelpers());
        var lpm = obj.Map("lpm")!;
        foreach (var (len, addr) in new[] { (8, 0x0A000000u), (16, 0xC0A80000u), (24, 0x0A010200u), (32, 0x01020304u) })
        {
            var k = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(k, (uint)len);
            BinaryPrimitives.WriteUInt32BigEndian(k.AsSpan(4), addr);
            Assert.Equal(0, lpm.UserUpdate(k, [1, 0, 0, 0], 0));
        }
        Assert.Equal(0, obj.Map("keys")!.UserUpdate([0, 0, 0, 0], [3, 0, 0, 0], 0));
        return (obj, prog);
    }

    private static string Dump(BpfObject obj)
        => string.Join("\n", obj.Maps.Select(m => m.Name + ": " + string.Join(" ",
            BpfKernelObject.ReadOurs(m).Select(e => Convert.ToHexString(e.Key) + "=" + Convert.ToHexString(e.Value)))));

    private static readonly Gen<byte[]> Frames = Gen.Select(Gen.Int[0, 80], Gen.Int[0, 5], (len, kind) => (len, kind)).SelectMany(t =>
        Gen.Byte.Array[t.len].Select(f =>
        {
            if (f.Length >= 34 && t.kind < 4)
            {
                // A source address some prefix holds, most of the time.
                uint[] saddr = [0x0A000001, 0xC0A80101, 0x0A010203, 0x01020304];
                BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(26), saddr[t.kind]);
            }
            return f;
        }));

    private static (XdpAction, byte[]) RunOne(Func<byte[], (XdpAction, BpfRunResult)> run, byte[] frame, byte[] buffer)
    {
        Array.Clear(buffer);
        frame.CopyTo(buffer, 256);
        var (action, result) = run(buffer);
        Assert.True(result.Ok, $"faulted: {result}");
        return (action, buffer.ToArray());
    }

    [Fact]
    public void Inlined_lookups_give_the_interpreters_verdicts_frames_and_maps()
    {
        var (io, ip) = Load();
        var (jo, jp) = Load();
        var jit = BpfJit.Compile(jp);
        Assert.Equal(8, jit.InlinedLookups);
        Assert.True(jit.ElidedChecks >= 4, $"{jit.ElidedChecks} tests proven away"); // the value accesses right after a lookup
        var vm = new BpfInterpreter();
        var stack = new BpfJitStack();
        var irun = new BpfRunContext();
        var jrun = new BpfRunContext();
        var ib = new byte[256 + 80 + 320];
        var jb = new byte[256 + 80 + 320];
        Gen.Select(Frames, Gen.Int[0, 3]).Sample((frame, cpu) =>
        {
            // CPU 3 is past the per-CPU array's copies: its lookup is NULL in both.
            irun.Cpu = cpu;
            jrun.Cpu = cpu;
            var want = RunOne(b =>
            {
                var x = new XdpBuff(b, 256, frame.Length, 0, 320);
                var a = vm.RunXdp(ip, ref x, 2, irun, io.Space, out var r);
                return (a, r);
            }, frame, ib);
            var got = RunOne(b =>
            {
                var x = new XdpBuff(b, 256, frame.Length, 0, 320);
                var a = jit.RunXdp(stack, ref x, 2, jrun, jo.Space, out var r);
                return (a, r);
            }, frame, jb);
            Assert.Equal(want.Item1, got.Item1);
            Assert.True(want.Item2.AsSpan().SequenceEqual(got.Item2), "frames differ");
        }, iter: 500, threads: 1);
        Assert.Equal(Dump(io), Dump(jo));
        // The programs did count: the comparison is of maps that changed.
        Assert.NotEqual(Dump(Load().Obj), Dump(jo));
    }

    [Fact]
    public void A_run_in_another_address_space_takes_the_helper()
    {
        // Compiled against one object's maps, run with another's: the inline lookups must not touch the first.
        var (compiledFor, prog) = Load();
        var (other, _) = Load();
        var (reference, refProg) = Load();
        var jit = BpfJit.Compile(prog);
        var vm = new BpfInterpreter();
        var frame = new byte[64];
        frame[0] = 5; frame[1] = 7; frame[2] = 1; frame[3] = 9;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(26), 0x0A000001);
        string before = Dump(compiledFor);
        for (int i = 0; i < 3; i++)
        {
            var jb = new byte[256 + 64 + 320];
            frame.CopyTo(jb, 256);
            var x = new XdpBuff(jb, 256, 64, 0, 320);
            var got = jit.RunXdp(new BpfJitStack(), ref x, 2, new BpfRunContext(), other.Space, out _);
            var ib = new byte[256 + 64 + 320];
            frame.CopyTo(ib, 256);
            var y = new XdpBuff(ib, 256, 64, 0, 320);
            var want = vm.RunXdp(refProg, ref y, 2, new BpfRunContext(), reference.Space, out _);
            Assert.Equal(want, got);
        }
        Assert.Equal(before, Dump(compiledFor));
        Assert.Equal(Dump(reference), Dump(other));
    }

    [Fact]
    public void Map_values_written_through_the_region_cache_respect_read_only_data()
    {
        // A store into .rodata faults in the interpreter (TryMap refuses it); the JIT's cached region must refuse it too,
        // also after a load from the same region filled the cache. Unverified, as the verifier would refuse the store.
        var obj = BpfObject.Load(BpfTestPrograms.Bytes("globals"), "globals.o", Cpus);
        var ro = obj.Maps.FirstOrDefault(m => m.Name.EndsWith(".rodata", StringComparison.Ordinal));
        Assert.NotNull(ro);
        ulong addr = ro.Lookup([0, 0, 0, 0], 0);
        Assert.NotEqual(0UL, addr);
        string text = $"lddw %r2, {addr}\nldxb %r3, [%r2+0]\nstb [%r2+0], 1\nmov %r0, 2\nexit";
        var prog = new BpfProgram(BpfAssembler.Assemble(text, "ro"), BpfVerifierOptions.Xdp() with { Maps = obj.Space }, 0);
        var b1 = new byte[128];
        var b2 = new byte[128];
        var x1 = new XdpBuff(b1, 32, 64, 0);
        var x2 = new XdpBuff(b2, 32, 64, 0);
        var want = new BpfInterpreter().RunXdp(prog, ref x1, 1, null, obj.Space, out var r1);
        var got = BpfJit.Compile(prog).RunXdp(new BpfJitStack(), ref x2, 1, null, obj.Space, out var r2);
        Assert.Equal(BpfFault.MemoryAccess, r1.Fault);
        Assert.Equal(r1, r2);
        Assert.Equal(want, got);
    }
}
