using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>One entry of an extension's option table (struct xt_option_entry of the x6 option API).</summary>
internal sealed class XtOpt
{
    public required string Name { get; init; }
    public required int Id { get; init; }
    /// <summary>The option takes an argument (every XTTYPE but NONE).</summary>
    public bool HasArg { get; init; }
    /// <summary>XTOPT_INVERT: "!" may precede it.</summary>
    public bool Invert { get; init; }
    /// <summary>XTOPT_MULTI: may be given more than once.</summary>
    public bool Multi { get; init; }
    /// <summary>XTOPT_MAND: must be given.</summary>
    public bool Mandatory { get; init; }
    /// <summary>Options (bit per id) this one cannot be combined with.</summary>
    public uint Excl { get; init; }
    /// <summary>Options (bit per id) this one needs.</summary>
    public uint Also { get; init; }
}

/// <summary>
/// The generic half of libxtables' x6 option parsing (xtables_option_parse / xtables_options_fcheck): option
/// lookup, "can only be used once", "cannot be inverted", and at the end the mandatory / exclusion / also
/// checks in table order, with iptables' messages.
/// </summary>
internal static class XtOptions
{
    public static XtOpt? Find(XtOpt[] table, string option)
    {
        if (!option.StartsWith("--", StringComparison.Ordinal)) return null;
        var name = option.AsSpan(2);
        foreach (var o in table) if (name.SequenceEqual(o.Name)) return o;
        return null;
    }

    /// <summary>Per-option checks done while parsing; records the option in <paramref name="flags"/>.</summary>
    public static string? Take(XtOpt[] table, string ext, XtOpt o, bool invert, ref uint flags, ArgReader a)
    {
        if ((flags & (1u << o.Id)) != 0 && !o.Multi) throw a.Error($"{ext}: option \"--{o.Name}\" can only be used once.");
        if (invert && !o.Invert) throw a.Error($"{ext}: option \"--{o.Name}\" cannot be inverted.");
        string? arg = o.HasArg ? a.Next("--" + o.Name) : null;
        flags |= 1u << o.Id;
        return arg;
    }

    /// <summary>xtables_options_fcheck, run after the extension's own final check: in table order, a missing
    /// mandatory option; then, by option id, an excluded option present or a required one missing.</summary>
    public static void FinalCheck(XtOpt[] table, string ext, uint flags, ArgReader a)
    {
        foreach (var o in table)
        {
            uint bit = 1u << o.Id;
            if (o.Mandatory && (flags & bit) == 0) throw a.Error($"{ext}: option \"--{o.Name}\" must be specified");
            if ((flags & bit) == 0) continue;
            for (int i = 0; i < 32; i++)
            {
                if (i == o.Id) continue;
                var other = Array.Find(table, x => x.Id == i);
                if (other == null) continue;
                if ((o.Excl & (1u << i)) != 0 && (flags & (1u << i)) != 0)
                    throw a.Error($"{ext}: option \"--{o.Name}\" cannot be used together with \"--{other.Name}\".");
                if ((o.Also & (1u << i)) != 0 && (flags & (1u << i)) == 0)
                    throw a.Error($"{ext}: option \"--{o.Name}\" also requires \"--{other.Name}\".");
            }
        }
    }

    /// <summary>strtoull with base 0 as xtables_strtoul uses it (decimal, 0x hex, 0 octal), whole string.</summary>
    public static bool TryStrtoul(string s, out ulong value)
    {
        value = 0;
        var t = s.AsSpan().TrimStart(" \t\n\v\f\r");
        bool neg = false;
        if (t.Length > 0 && (t[0] == '+' || t[0] == '-')) { neg = t[0] == '-'; t = t[1..]; }
        int b = 10;
        if (t.Length > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') && Uri.IsHexDigit(t[2])) { b = 16; t = t[2..]; }
        else if (t.Length > 0 && t[0] == '0') b = 8;
        if (t.Length == 0) return false;
        ulong v = 0;
        foreach (char c in t)
        {
            int d = c is >= '0' and <= '9' ? c - '0' : c is >= 'a' and <= 'f' ? c - 'a' + 10 : c is >= 'A' and <= 'F' ? c - 'A' + 10 : 99;
            if (d >= b) return false;
            ulong nv = unchecked(v * (ulong)b + (ulong)d);
            if (v > (ulong.MaxValue - (ulong)d) / (ulong)b) return false;
            v = nv;
        }
        value = neg ? unchecked(0 - v) : v;
        return true;
    }

    /// <summary>XTTYPE_UINT8/16/32/64: the number in [min, max] or iptables' "bad value" error.</summary>
    public static ulong UInt(string ext, XtOpt o, string arg, ulong min, ulong max, ArgReader a)
    {
        if (!TryStrtoul(arg, out ulong v) || v < min || v > max)
            throw a.Error($"{ext}: bad value for option \"--{o.Name}\", or out of range ({min}-{max}).");
        return v;
    }

    /// <summary>XTTYPE_UINT16RANGE (xtopt_parse_mint): "a", "a:b", ":b", "a:"; one value sets both ends.</summary>
    public static (ushort, ushort) UInt16Range(string ext, XtOpt o, string arg, ArgReader a)
    {
        var parts = arg.Split(':');
        if (parts.Length > 2) throw a.Error($"{ext}: Too many components for option \"--{o.Name}\" (max: 2)");
        var vals = new ushort[] { 0, 65535 };
        int pos = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            string rest = string.Join(':', parts[i..]);
            if (parts[i].Length == 0) { pos += 1; continue; }
            if (!TryStrtoul(parts[i], out ulong v) || v > 65535)
                throw a.Error($"{ext}: bad value for option \"--{o.Name}\" near \"{rest}\", or out of range (0-65535).");
            vals[i] = (ushort)v;
            pos++;
        }
        if (parts.Length == 1) vals[1] = vals[0];
        return (vals[0], vals[1]);
    }

    /// <summary>xtables_ipaddr_to_numeric.</summary>
    public static string Ip(uint a) => Ipv4.Format(a);

    /// <summary>inet_aton as iptables' host parsing accepts a dotted (possibly short: 1.2.3 = 1.2.0.3) address.</summary>
    public static bool TryInetAton(string s, out uint addr)
    {
        addr = 0;
        var parts = s.Split('.');
        if (parts.Length is < 1 or > 4) return false;
        var vals = new ulong[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (parts[i].Length == 0 || !TryStrtoul(parts[i], out vals[i]) || parts[i][0] is '+' or '-' or ' ') return false;
        ulong r;
        switch (parts.Length)
        {
            case 1: if (vals[0] > 0xFFFFFFFF) return false; r = vals[0]; break;
            case 2: if (vals[0] > 255 || vals[1] > 0xFFFFFF) return false; r = vals[0] << 24 | vals[1]; break;
            case 3: if (vals[0] > 255 || vals[1] > 255 || vals[2] > 0xFFFF) return false; r = vals[0] << 24 | vals[1] << 16 | vals[2]; break;
            default:
                if (vals.Any(v => v > 255)) return false;
                r = vals[0] << 24 | vals[1] << 16 | vals[2] << 8 | vals[3]; break;
        }
        addr = (uint)r;
        return true;
    }
}

/// <summary>
/// A match extension parsed with an x6 option table: the generic checks and messages come from
/// <see cref="XtOptions"/>; the extension handles one recognised option at a time.
/// </summary>
public abstract class X6MatchExtension<T> : XtMatchExtension<T> where T : XtMatch, new()
{
    private protected abstract XtOpt[] Options { get; }

    /// <summary>Handles one option of the table; <paramref name="arg"/> is null for options without argument.</summary>
    private protected abstract void Parse(T info, XtOpt option, string? arg, bool invert, ArgReader a);

    /// <summary>x6_fcheck, run before the generic table checks.</summary>
    private protected virtual void Check(T info, uint flags, Rule rule, ArgReader a) { }

    internal sealed override bool Parse(T info, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        uint flags = info.OptionFlags;
        string? arg = XtOptions.Take(Options, Name, o, invert, ref flags, a);
        info.OptionFlags = flags;
        Parse(info, o, arg, invert, a);
        return true;
    }

    internal sealed override void FinalCheck(T info, Rule rule, ArgReader a)
    {
        Check(info, info.OptionFlags, rule, a);
        XtOptions.FinalCheck(Options, Name, info.OptionFlags, a);
    }

    private protected static XtOpt Flag(string name, int id, bool invert = false, uint excl = 0, uint also = 0)
        => new() { Name = name, Id = id, Invert = invert, Excl = excl, Also = also };

    private protected static XtOpt Arg(string name, int id, bool invert = false, bool mandatory = false, uint excl = 0, uint also = 0, bool multi = false)
        => new() { Name = name, Id = id, HasArg = true, Invert = invert, Mandatory = mandatory, Excl = excl, Also = also, Multi = multi };

    internal static void AppendInv(StringBuilder sb, bool inv) { if (inv) sb.Append(" !"); }

    internal static string U(ulong v) => v.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// A target extension parsed with an x6 option table (the same generic checks and messages as
/// <see cref="X6MatchExtension{T}"/>).
/// </summary>
public abstract class X6TargetExtension<T> : XtTargetExtension<T> where T : XtTarget, new()
{
    private protected abstract XtOpt[] Options { get; }

    /// <summary>Handles one option of the table; <paramref name="arg"/> is null for options without argument.</summary>
    private protected abstract void Parse(T info, XtOpt option, string? arg, bool invert, ArgReader a);

    /// <summary>x6_fcheck, run before the generic table checks.</summary>
    private protected virtual void Check(T info, uint flags, Rule rule, ArgReader a) { }

    internal sealed override bool Parse(T info, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        uint flags = info.OptionFlags;
        string? arg = XtOptions.Take(Options, Name, o, invert, ref flags, a);
        info.OptionFlags = flags;
        Parse(info, o, arg, invert, a);
        return true;
    }

    internal sealed override void FinalCheck(T info, Rule rule, ArgReader a)
    {
        Check(info, info.OptionFlags, rule, a);
        XtOptions.FinalCheck(Options, Name, info.OptionFlags, a);
    }

    private protected static XtOpt Flag(string name, int id, bool invert = false, uint excl = 0, uint also = 0)
        => new() { Name = name, Id = id, Invert = invert, Excl = excl, Also = also };

    private protected static XtOpt Arg(string name, int id, bool invert = false, bool mandatory = false, uint excl = 0, uint also = 0, bool multi = false)
        => new() { Name = name, Id = id, HasArg = true, Invert = invert, Mandatory = mandatory, Excl = excl, Also = also, Multi = multi };
}
