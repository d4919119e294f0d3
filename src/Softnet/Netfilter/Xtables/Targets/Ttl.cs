using System.Buffers.Binary;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of TTL (xt_HL.c ttl_tg, mangle table only): set, raise (to 255 at most) or lower (to 0 at
/// least) the IPv4 TTL, with csum_replace2 on the header checksum when it changes.</summary>
public sealed class TtlTarget : XtTarget
{
    public enum TtlMode : byte { Set = 0, Inc = 1, Dec = 2 }
    public TtlMode Mode;
    public byte Value;
    internal uint Flags;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        var ip = p.WritablePacket;
        if (ip.Length < 20) return TargetResult.Continue;
        int ttl = ip[8];
        int next = Mode switch
        {
            TtlMode.Set => Value,
            TtlMode.Inc => Math.Min(ttl + Value, 255),
            _ => Math.Max(ttl - Value, 0),
        };
        if (next != ttl)
        {
            ushort check = BinaryPrimitives.ReadUInt16BigEndian(ip[10..]);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], MangleChecksum.Replace2(check, (ushort)(ttl << 8), (ushort)(next << 8)));
            ip[8] = (byte)next;
        }
        return TargetResult.Continue;
    }

    internal override TableKind? OnlyTable => TableKind.Mangle;
}

/// <summary>Userspace half of TTL (libipt_TTL.c).</summary>
internal sealed class TtlTargetExtension : XtTargetExtension<TtlTarget>
{
    public override string Name => "TTL";
    private const uint Any = 0b111;

    private static readonly XtOpt[] Options =
    {
        new("ttl-set", 0, XtOptType.UInt8) { Excl = Any },
        new("ttl-dec", 2, XtOptType.UInt8) { Excl = Any, Min = 1 },
        new("ttl-inc", 1, XtOptType.UInt8) { Excl = Any, Min = 1 },
    };

    internal override bool Parse(TtlTarget t, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        string arg = XtOptions.Begin(Name, o, ref t.Flags, invert, a)!;
        t.Value = (byte)XtOptions.Int(Name, o, arg, a);
        t.Mode = (TtlTarget.TtlMode)o.Id;
        return true;
    }

    internal override void FinalCheck(TtlTarget t, Rule rule, ArgReader a)
    {
        if ((t.Flags & Any) == 0) throw a.Error("TTL: You must specify an action");
        XtOptions.FinalCheck(Name, Options, t.Flags, a);
    }

    private static string Word(TtlTarget.TtlMode m, bool save) => m switch
    {
        TtlTarget.TtlMode.Set => save ? " --ttl-set " : " TTL set to ",
        TtlTarget.TtlMode.Inc => save ? " --ttl-inc " : " TTL increment by ",
        _ => save ? " --ttl-dec " : " TTL decrement by ",
    };

    internal override void Save(TtlTarget t, StringBuilder sb) => sb.Append(Word(t.Mode, true)).Append(t.Value);
    internal override void List(TtlTarget t, StringBuilder sb) => sb.Append(Word(t.Mode, false)).Append(t.Value);
}
