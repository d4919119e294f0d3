using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Elf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;
using static Softnet.Tests.Xdp.Bpf.Elf.BpfTestPrograms;

namespace Softnet.Tests.Xdp.Bpf.Elf;

/// <summary>bpf_tail_call through a prog array, in the interpreter and the JIT: the jump, an empty slot falling
/// through, and the MAX_TAIL_CALL_CNT limit.</summary>
public class BpfTailCallTests
{
    private static (BpfObject Obj, BpfProgram Dispatch) Load(bool fillTcp = true)
    {
        var obj = BpfObject.Load(Object("tail_call"));
        var table = (BpfProgArrayMap)obj.Map("jmp_table")!;
        var helpers = MapHelpers();
        Assert.Equal(0, table.SetProgram(0, obj.LoadProgram("xdp/udp", helpers)));
        if (fillTcp) Assert.Equal(0, table.SetProgram(1, obj.LoadProgram("xdp/tcp", helpers)));
        Assert.Equal(0, table.SetProgram(2, obj.LoadProgram("xdp/loop", helpers)));
        return (obj, obj.LoadProgram("xdp", helpers));
    }

    private static byte[] Proto(byte proto)
    {
        var f = Udp4(53);
        f[23] = proto;
        return f;
    }

    [Theory]
    [InlineData(BpfEngine.Interpreter)]
    [InlineData(BpfEngine.Jit)]
    public void The_dispatcher_jumps_by_protocol_and_falls_through_where_no_program_is(BpfEngine engine)
    {
        var (obj, dispatch) = Load();
        Assert.Equal(XdpAction.Drop, Run(dispatch, Proto(17), engine: engine).Action);
        Assert.Equal(XdpAction.Tx, Run(dispatch, Proto(6), engine: engine).Action);
        Assert.Equal(XdpAction.Pass, Run(dispatch, Proto(1), engine: engine).Action);
        var hits = obj.Map("hits")!;
        Assert.Equal([1UL, 1UL, 0UL, 1UL], Enumerable.Range(0, 4).Select(i => U64(hits, (uint)i)).ToArray());

        var (obj2, dispatch2) = Load(fillTcp: false);
        Assert.Equal(XdpAction.Pass, Run(dispatch2, Proto(6), engine: engine).Action);
        Assert.Equal(1UL, U64(obj2.Map("hits")!, 3));
    }

    [Theory]
    [InlineData(BpfEngine.Interpreter)]
    [InlineData(BpfEngine.Jit)]
    public void A_program_tail_calling_itself_runs_thirty_four_times(BpfEngine engine)
    {
        var (obj, _) = Load();
        var loop = ((BpfProgArrayMap)obj.Map("jmp_table")!).ProgramAt(2)!;
        Assert.Equal(XdpAction.Drop, Run(loop, Proto(17), engine: engine).Action);
        Assert.Equal(34UL, U64(obj.Map("hits")!, 2));
        Assert.Equal(XdpAction.Drop, Run(loop, Proto(17), engine: engine).Action);
        Assert.Equal(68UL, U64(obj.Map("hits")!, 2));
    }
}
