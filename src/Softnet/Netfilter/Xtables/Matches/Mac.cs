using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m mac (xt_mac.c): the Ethernet source of a received frame.</summary>
public sealed class MacMatch : XtMatch
{
    internal override bool IsPure => true;
    public ulong Source;
    public bool Invert;

    internal override int ValidHooks => XtHooks.PreRouting | XtHooks.LocalIn | XtHooks.Forward;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
        => p.SrcMac != 0 && ((p.SrcMac == Source) ^ Invert);
}

/// <summary>Userspace half of -m mac (libxt_mac.c).</summary>
internal sealed class MacMatchExtension : X6MatchExtension<MacMatch>
{
    public override string Name => "mac";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    private static readonly XtOpt[] Table = { Arg("mac-source", 0, invert: true, mandatory: true) };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(MacMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        var parts = arg!.Split(':');
        ulong v = 0;
        if (parts.Length != 6) throw a.Error("Invalid MAC address specified.");
        foreach (var part in parts)
        {
            if (part.Length is < 1 or > 2 || !byte.TryParse(part, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
                throw a.Error("Invalid MAC address specified.");
            v = v << 8 | b;
        }
        m.Source = v;
        m.Invert = invert;
    }

    internal static string Text(ulong mac)
    {
        var sb = new StringBuilder();
        for (int i = 5; i >= 0; i--)
        {
            sb.Append(((byte)(mac >> (i * 8))).ToString("x2", CultureInfo.InvariantCulture));
            if (i > 0) sb.Append(':');
        }
        return sb.ToString();
    }

    internal override void Save(MacMatch m, StringBuilder sb) => sb.Append(m.Invert ? " !" : "").Append(" --mac-source ").Append(Text(m.Source));
    internal override void List(MacMatch m, StringBuilder sb) => sb.Append(" MAC").Append(m.Invert ? " !" : "").Append(' ').Append(Text(m.Source));
}
