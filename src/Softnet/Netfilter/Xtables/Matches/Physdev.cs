using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m physdev (xt_physdev.c): the bridge ports of a bridged IP packet (br_netfilter).</summary>
public sealed class PhysdevMatch : XtMatch
{
    public const byte OpIn = 1, OpOut = 2, OpBridged = 4, OpIsIn = 8, OpIsOut = 16;
    internal override bool IsPure => true;
    public byte Bitmask, InvertMask;
    public string PhysIn = "", PhysOut = "";

    internal override string? CheckEntry(in XtCheck c)
    {
        if ((Bitmask & (OpOut | OpIsOut)) != 0 && ((Bitmask & OpBridged) == 0 || (InvertMask & OpBridged) != 0)
            && (c.HookMask & XtHooks.LocalOut) != 0)
            return c.Invalid("physdev: --physdev-out and --physdev-is-out only supported in the FORWARD and POSTROUTING chains with bridged traffic");
        return null;
    }

    private bool Inv(byte op) => (InvertMask & op) != 0;
    private bool Has(byte op) => (Bitmask & op) != 0;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (!p.HasBridgeInfo)
        {
            // Not a bridged packet: only the inverted options can match.
            foreach (byte op in Ops) if (Has(op) && !Inv(op)) return false;
            return true;
        }
        string? outdev = p.PhysOut, indev = p.PhysIn;
        if (Has(OpBridged) && ((outdev != null) ^ !Inv(OpBridged))) return false;
        if ((Has(OpIsIn) && ((indev == null) ^ Inv(OpIsIn))) || (Has(OpIsOut) && ((outdev == null) ^ Inv(OpIsOut)))) return false;
        if (Has(OpIn) && indev != null && (IfaceEqual(indev, PhysIn) ^ !Inv(OpIn))) return false;
        if (!Has(OpOut) || outdev == null) return true;
        return IfaceEqual(outdev, PhysOut) ^ Inv(OpOut);
    }

    private static readonly byte[] Ops = { OpBridged, OpIsIn, OpIsOut, OpIn, OpOut };

    private static bool IfaceEqual(string dev, string rule)
    {
        if (rule.Length > 0 && rule[^1] == '+') return dev.AsSpan().StartsWith(rule.AsSpan(0, rule.Length - 1), StringComparison.Ordinal);
        return string.Equals(dev, rule, StringComparison.Ordinal);
    }
}

/// <summary>Userspace half of -m physdev (libxt_physdev.c).</summary>
internal sealed class PhysdevMatchExtension : X6MatchExtension<PhysdevMatch>
{
    public override string Name => "physdev";
    // xt_physdev and libxt_physdev are NFPROTO_UNSPEC: ip6tables takes it for br_netfilter's IPv6 frames.
    public override NfProto Family => NfProto.Unspec;
    private const int OIn = 0, OOut = 1, OIsIn = 2, OIsOut = 3, OBridged = 4;
    private static readonly XtOpt[] Table =
    {
        Arg("physdev-in", OIn, invert: true), Arg("physdev-out", OOut, invert: true),
        Flag("physdev-is-in", OIsIn, invert: true), Flag("physdev-is-out", OIsOut, invert: true),
        Flag("physdev-is-bridged", OBridged, invert: true),
    };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(PhysdevMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        byte op = o.Id switch
        {
            OIn => PhysdevMatch.OpIn, OOut => PhysdevMatch.OpOut, OIsIn => PhysdevMatch.OpIsIn,
            OIsOut => PhysdevMatch.OpIsOut, _ => PhysdevMatch.OpBridged,
        };
        if (arg != null)
        {
            if (arg.Length == 0 || arg.Length > 15) throw a.Error($"interface name `{arg}' must be shorter than IFNAMSIZ (15)");
            if (o.Id == OIn) m.PhysIn = arg; else m.PhysOut = arg;
        }
        m.Bitmask |= op;
        if (invert) m.InvertMask |= op;
    }

    private protected override void Check(PhysdevMatch m, uint flags, Rule rule, ArgReader a)
    {
        if (flags == 0) throw a.Error("PHYSDEV: no physdev option specified");
    }

    internal override void Save(PhysdevMatch m, StringBuilder sb) => Render(m, sb, " --physdev");
    internal override void List(PhysdevMatch m, StringBuilder sb) { sb.Append(" PHYSDEV match"); Render(m, sb, " --physdev"); }

    private static void Render(PhysdevMatch m, StringBuilder sb, string pre)
    {
        string I(byte op) => (m.InvertMask & op) != 0 ? " !" : "";
        if ((m.Bitmask & PhysdevMatch.OpIsIn) != 0) sb.Append(I(PhysdevMatch.OpIsIn)).Append(pre).Append("-is-in");
        if ((m.Bitmask & PhysdevMatch.OpIn) != 0) sb.Append(I(PhysdevMatch.OpIn)).Append(pre).Append("-in ").Append(m.PhysIn);
        if ((m.Bitmask & PhysdevMatch.OpIsOut) != 0) sb.Append(I(PhysdevMatch.OpIsOut)).Append(pre).Append("-is-out");
        if ((m.Bitmask & PhysdevMatch.OpOut) != 0) sb.Append(I(PhysdevMatch.OpOut)).Append(pre).Append("-out ").Append(m.PhysOut);
        if ((m.Bitmask & PhysdevMatch.OpBridged) != 0) sb.Append(I(PhysdevMatch.OpBridged)).Append(pre).Append("-is-bridged");
    }
}
