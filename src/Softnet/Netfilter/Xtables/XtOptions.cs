using System.Globalization;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>Value kinds of an extension option (XTTYPE_* of libxtables), as far as the extensions here need them.</summary>
internal enum XtOptType : byte
{
    None,
    UInt8,
    UInt16,
    UInt32,
    String,
    /// <summary>"a:b" integer range of u16 (XTTYPE_UINT16RC).</summary>
    UInt16Range,
    /// <summary>"value[/mask]" u32 pair (XTTYPE_MARKMASK32).</summary>
    MarkMask32,
    /// <summary>"value[/mask]" or a TOS symbol (XTTYPE_TOSMASK).</summary>
    TosMask,
}

/// <summary>
/// One row of an extension's option table (struct xt_option_entry of the x6 option API): the name without dashes,
/// its id (bit in the parse flags), the value kind (None: a flag), the ids it excludes or requires, whether it is
/// mandatory, invertible or may repeat, the value bounds (0 = the type's own bound) and the size of a fixed string
/// field it is copied into.
/// </summary>
internal sealed record XtOpt(string Name, int Id, XtOptType Type = XtOptType.None)
{
    /// <summary>The option takes an argument (every XTTYPE but NONE).</summary>
    public bool HasArg => Type != XtOptType.None;
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
    public ulong Min { get; init; }
    public ulong Max { get; init; }
    /// <summary>String fields: the C buffer size (copy truncated to Size-1 characters); 0 = unbounded.</summary>
    public int Size { get; init; }
}

/// <summary>
/// The generic half of libxtables' x6 option handling (xtoptions.c), for matches and targets alike: the checks
/// xtables_option_parse makes before an extension sees an option (argument present, used once, inversion), the
/// integer, range, mark/mask, TOS and string parsers with their messages, and xtables_options_fcheck's mandatory /
/// "also" / exclusion checks. Messages are iptables 1.8.9's, prefixed with the extension name where iptables
/// prefixes them.
/// </summary>
internal static class XtOptions
{
    /// <summary>The entry for "--name", or null when the option is not in the table.</summary>
    public static XtOpt? Find(XtOpt[] table, string option)
    {
        if (!option.StartsWith("--", StringComparison.Ordinal)) return null;
        var name = option.AsSpan(2);
        foreach (var o in table)
            if (name.SequenceEqual(o.Name)) return o;
        return null;
    }

    /// <summary>
    /// xtables_option_parse's preamble: the value (getopt demands it before the extension runs), then a second use
    /// of an option that may not repeat, then an inversion the option does not allow. Records the option in
    /// <paramref name="flags"/> and returns the argument (null for a flag).
    /// </summary>
    public static string? Begin(string ext, XtOpt o, ref uint flags, bool invert, ArgReader a)
    {
        string? arg = o.HasArg ? a.Next("--" + o.Name) : null;
        uint bit = 1u << o.Id;
        if ((flags & bit) != 0 && !o.Multi) throw a.Error($"{ext}: option \"--{o.Name}\" can only be used once.");
        if (invert && !o.Invert) throw a.Error($"{ext}: option \"--{o.Name}\" cannot be inverted.");
        flags |= bit;
        return arg;
    }

    /// <summary>xtopt_parse_int: the whole argument an integer (C base 0) within [min, max].</summary>
    public static ulong Int(string ext, XtOpt o, string arg, ArgReader a)
    {
        ulong typeMax = o.Type switch { XtOptType.UInt8 => byte.MaxValue, XtOptType.UInt16 => ushort.MaxValue, _ => uint.MaxValue };
        ulong min = o.Min != 0 ? o.Min : 0, max = o.Max != 0 ? o.Max : typeMax;
        if (!StrToUL(arg, 0, out ulong v, out int end, min, max) || end != arg.Length)
            throw a.Error($"{ext}: bad value for option \"--{o.Name}\", or out of range ({min}-{max}).");
        return v;
    }

    /// <summary>xtopt_parse_int with the bounds given here (an extension whose table leaves them to the code).</summary>
    public static ulong UInt(string ext, XtOpt o, string arg, ulong min, ulong max, ArgReader a)
    {
        if (!TryStrtoul(arg, out ulong v) || v < min || v > max)
            throw a.Error($"{ext}: bad value for option \"--{o.Name}\", or out of range ({min}-{max}).");
        return v;
    }

    /// <summary>xtopt_parse_mint for a u16 range: up to two ':'-separated values, an empty side meaning 0 (first)
    /// or 65535 (second). Returns the values and how many there were.</summary>
    public static (ushort First, ushort Second, int Count) UInt16Range(string ext, XtOpt o, string arg, ArgReader a)
    {
        const ulong lmax = ushort.MaxValue;
        Span<ushort> vals = stackalloc ushort[2];
        int n = 0, pos = 0;
        while (true)
        {
            if (n == 2) throw a.Error($"{ext}: Too many components for option \"--{o.Name}\" (max: 2)");
            ulong value;
            int end;
            if (pos >= arg.Length || arg[pos] == ':')
            {
                end = pos;
                value = n == 1 ? lmax : 0;
            }
            else
            {
                if (!StrToUL(arg, pos, out value, out end, 0, lmax))
                    throw a.Error($"{ext}: bad value for option \"--{o.Name}\" near \"{arg[pos..]}\", or out of range (0-{lmax}).");
                if (end < arg.Length && arg[end] != ':')
                    throw a.Error($"{ext}: Argument to \"--{o.Name}\" has unexpected characters near \"{arg[end..]}\".");
            }
            vals[n++] = (ushort)value;
            if (end >= arg.Length) break;
            pos = end + 1;
        }
        return (vals[0], n > 1 ? vals[1] : (ushort)0, n);
    }

    /// <summary>XTTYPE_UINT16RC as libxt_length and libxt_tcpmss take it: "a" is both ends.</summary>
    public static (ushort Min, ushort Max) UInt16RangeOrOne(string ext, XtOpt o, string arg, ArgReader a)
    {
        var (min, max, n) = UInt16Range(ext, o, arg, a);
        return (min, n == 2 ? max : min);
    }

    /// <summary>"min" or "min:max", as those extensions print a range.</summary>
    public static void AppendRange(StringBuilder sb, ushort min, ushort max)
    {
        sb.Append(min);
        if (min != max) sb.Append(':').Append(max);
    }

    /// <summary>xtables_parse_mark_mask: "value[/mask]", mask all ones when absent.</summary>
    public static (uint Value, uint Mask) MarkMask(string ext, XtOpt o, string arg, ArgReader a)
    {
        if (!StrToUL(arg, 0, out ulong v, out int end, 0, uint.MaxValue))
            throw a.Error($"{ext}: bad integer value for option \"--{o.Name}\", or out of range.");
        if (end == arg.Length) return ((uint)v, uint.MaxValue);
        if (arg[end] != '/') throw a.Error($"{ext}: trailing garbage after value for option \"--{o.Name}\".");
        if (!StrToUL(arg, end + 1, out ulong m, out end, 0, uint.MaxValue))
            throw a.Error($"{ext}: bad integer value for option \"--{o.Name}\", or out of range.");
        if (end != arg.Length) throw a.Error($"{ext}: trailing garbage after value for option \"--{o.Name}\".");
        return ((uint)v, (uint)m);
    }

    private static readonly (string Name, byte Value)[] TosSymbols =
    {
        ("Minimize-Delay", 0x10),
        ("Maximize-Throughput", 0x08),
        ("Maximize-Reliability", 0x04),
        ("Minimize-Cost", 0x02),
        ("Normal-Service", 0x00),
    };

    /// <summary>
    /// xtopt_parse_tosmask: a number (mask 0xff unless "/mask" follows) or a symbol, whose mask is
    /// <paramref name="symbolMask"/> (the option entry's max: 0x3f for TOS revision 1).
    /// </summary>
    public static (byte Value, byte Mask) TosMask(string arg, byte symbolMask, ArgReader a)
    {
        if (StrToUL(arg, 0, out ulong v, out int end, 0, byte.MaxValue))
        {
            ulong mask = byte.MaxValue;
            if (end < arg.Length && arg[end] == '/')
            {
                if (!StrToUL(arg, end + 1, out mask, out end, 0, byte.MaxValue))
                    throw a.Error($"Illegal value: \"{arg}\"");
            }
            if (end != arg.Length) throw a.Error($"Illegal value: \"{arg}\"");
            return ((byte)v, (byte)mask);
        }
        foreach (var (name, value) in TosSymbols)
            if (string.Equals(name, arg, StringComparison.OrdinalIgnoreCase)) return (value, symbolMask);
        throw a.Error($"Symbolic name \"{arg}\" is unknown");
    }

    /// <summary>xtopt_parse_string with XTOPT_PUT: length bounds, then the copy into a fixed buffer (truncating).</summary>
    public static string Str(XtOpt o, string arg, ArgReader a)
    {
        if (o.Min != 0 && (ulong)arg.Length < o.Min) throw a.Error($"Argument must have a minimum length of {o.Min} characters");
        if (o.Max != 0 && (ulong)arg.Length > o.Max) throw a.Error($"Argument must have a maximum length of {o.Max} characters");
        return o.Size != 0 && arg.Length >= o.Size ? arg[..(o.Size - 1)] : arg;
    }

    /// <summary>xtables_options_fcheck: mandatory options, then per used option its "also" and "excl" partners, in table order.</summary>
    public static void FinalCheck(string ext, XtOpt[] table, uint flags, ArgReader a)
    {
        foreach (var e in table)
        {
            uint ef = 1u << e.Id;
            if (e.Mandatory && (flags & ef) == 0) throw a.Error($"{ext}: option \"--{e.Name}\" must be specified");
            if ((flags & ef) == 0) continue;
            for (int i = 0; i < 32; i++)
            {
                if (i == e.Id) continue;
                var other = Lookup(table, i);
                if (other == null) continue;
                uint of = 1u << other.Id;
                if ((e.Also & of) != 0 && (flags & of) == 0)
                    throw a.Error($"{ext}: option \"--{e.Name}\" also requires \"--{other.Name}\".");
                if ((e.Excl & of) == 0 || (flags & (ef | of)) != (ef | of)) continue;
                throw a.Error($"{ext}: option \"--{e.Name}\" cannot be used together with \"--{other.Name}\".");
            }
        }
    }

    private static XtOpt? Lookup(XtOpt[] table, int id)
    {
        foreach (var o in table)
            if (o.Id == id) return o;
        return null;
    }

    /// <summary>
    /// xtables_strtoul from <paramref name="start"/>: C strtoumax with base 0 (leading blanks and '+' allowed,
    /// "0x" hex, leading 0 octal), a '-' refused, no digits refused, overflow and values outside [min, max]
    /// refused. <paramref name="end"/> is where the number stopped.
    /// </summary>
    public static bool StrToUL(string s, int start, out ulong value, out int end, ulong min, ulong max)
    {
        value = 0;
        end = start;
        int p = start;
        while (p < s.Length && s[p] is ' ' or '\t' or '\n' or '\v' or '\f' or '\r') p++;
        if (p < s.Length && s[p] == '-') return false;
        if (p < s.Length && s[p] == '+') p++;
        int numBase = 10;
        if (p < s.Length && s[p] == '0')
        {
            if (p + 2 < s.Length && (s[p + 1] is 'x' or 'X') && IsDigit(s[p + 2], 16)) { numBase = 16; p += 2; }
            else numBase = 8;
        }
        int digits = p;
        ulong v = 0;
        bool overflow = false;
        while (p < s.Length && IsDigit(s[p], numBase))
        {
            uint d = (uint)HexValue(s[p]);
            if (v > (ulong.MaxValue - d) / (ulong)numBase) overflow = true;
            else v = v * (ulong)numBase + d;
            p++;
        }
        if (p == digits) return false;
        end = p;
        if (overflow || v < min || (max != 0 && v > max)) return false;
        value = v;
        return true;
    }

    private static bool IsDigit(char c, int numBase) => numBase switch
    {
        8 => c is >= '0' and <= '7',
        10 => char.IsAsciiDigit(c),
        _ => char.IsAsciiHexDigit(c),
    };

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    /// <summary>xtables_strtoul over the whole string (C base 0): false for no digits, trailing characters, a '-' or
    /// overflow.</summary>
    public static bool TryStrtoul(string s, out ulong value)
        => StrToUL(s, 0, out value, out int end, 0, 0) && end == s.Length;

    /// <summary>"%u" of an unsigned value.</summary>
    public static string U(ulong v) => v.ToString(CultureInfo.InvariantCulture);

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
        string? arg = XtOptions.Begin(Name, o, ref flags, invert, a);
        info.OptionFlags = flags;
        Parse(info, o, arg, invert, a);
        return true;
    }

    internal sealed override void FinalCheck(T info, Rule rule, ArgReader a)
    {
        Check(info, info.OptionFlags, rule, a);
        XtOptions.FinalCheck(Name, Options, info.OptionFlags, a);
    }

    private protected static XtOpt Flag(string name, int id, bool invert = false, uint excl = 0, uint also = 0)
        => new(name, id) { Invert = invert, Excl = excl, Also = also };

    private protected static XtOpt Arg(string name, int id, bool invert = false, bool mandatory = false, uint excl = 0, uint also = 0, bool multi = false)
        => new(name, id, XtOptType.String) { Invert = invert, Mandatory = mandatory, Excl = excl, Also = also, Multi = multi };

    internal static void AppendInv(StringBuilder sb, bool inv) { if (inv) sb.Append(" !"); }

    internal static string U(ulong v) => v.ToString(CultureInfo.InvariantCulture);
}
