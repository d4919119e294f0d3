using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of -m limit. iptables-nft (1.8.9) does not load xt_limit: it turns the rule into the native
/// nftables limit expression (nft.c add_nft_limit), so the token bucket is nft_limit's, in nanoseconds: a
/// bucket of burst × (unit / rate) ns, each packet costing unit / rate ns, refilled by the time elapsed.
/// With <see cref="NetfilterTables.IptablesLegacy"/> it is xt_limit's bucket instead (credits per jiffy).
/// </summary>
public sealed class LimitMatch : XtMatch
{
    public const uint Scale = 10000;
    /// <summary>Average period per packet in 1/10000 s (xt_rateinfo.avg).</summary>
    public uint Avg = Scale * 3600 / 3;
    public uint Burst = 5;
    /// <summary>Evaluated as xt_limit (iptables-legacy) rather than nft_limit; set at checkentry.</summary>
    public bool Legacy { get; private set; }

    // nft_limit state.
    private ulong _rate, _nsecs, _cost, _tokensMax, _tokens;
    private long _last;
    private bool _started;
    // xt_limit state.
    private uint _credit, _creditCap, _xtCost;
    private long _prev;

    internal override string? CheckEntry(in XtCheck c)
    {
        Legacy = c.Tables.IptablesLegacy;
        if (!Legacy)
        {
            // The rule reaches the kernel as an nft rate per unit and comes back from it (what iptables-save then
            // prints); nft_limit takes burst 0 as its default of 5.
            var (r, u) = NftRate(Avg);
            Avg = (uint)(Scale * u / r);
            if (Burst == 0) Burst = 5;
        }
        if (Legacy)
        {
            if (Burst == 0 || UserToCredits((ulong)Avg * Burst) < UserToCredits(Avg))
                return c.Invalid($"limit: overflow, try lower: {Avg}/{Burst}");
            _creditCap = _credit = UserToCredits((ulong)Avg * Burst);
            _xtCost = UserToCredits(Avg);
            return null;
        }
        (_rate, ulong unit) = NftRate(Avg);
        _nsecs = unit * 1_000_000_000UL;
        _cost = _nsecs / _rate;
        _tokensMax = _tokens = _cost * Burst;
        return null;
    }

    /// <summary>add_nft_limit: the xt rate as an nft rate per unit (day, hour, minute or second).</summary>
    internal static (ulong Rate, ulong Unit) NftRate(uint avg)
    {
        ReadOnlySpan<uint> mult = [Scale * 24 * 60 * 60, Scale * 60 * 60, Scale * 60, Scale];
        int i;
        for (i = 1; i < mult.Length; i++)
            if (avg > mult[i] || mult[i] / avg < mult[i] % avg) break;
        return (mult[i - 1] / avg, mult[i - 1] / Scale);
    }

    private static uint Hz => (uint)XtClock.Hz;
    private static uint CreditsPerJiffy
    {
        get
        {
            uint maxCpj = 0xFFFFFFFF / (Hz * 60 * 60 * 24);
            uint p = 1;
            while (p * 2 <= maxCpj) p *= 2;
            return p;
        }
    }

    private static uint UserToCredits(ulong user)
    {
        ulong cpj = CreditsPerJiffy;
        return (uint)(user * Hz * cpj / Scale);
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (Legacy)
        {
            long now = XtClock.Jiffies(p.TimestampNs);
            if (!_started) { _prev = now; _started = true; }
            ulong credit = _credit + (ulong)Math.Max(0, now - _prev) * CreditsPerJiffy;
            _prev = now;
            _credit = credit > _creditCap ? _creditCap : (uint)credit;
            if (_credit >= _xtCost) { _credit -= _xtCost; return true; }
            return false;
        }
        long ns = p.TimestampNs;
        if (!_started) { _last = ns; _started = true; }
        ulong tokens = _tokens + (ulong)Math.Max(0, ns - _last);
        if (tokens > _tokensMax) tokens = _tokensMax;
        _last = ns;
        if (tokens >= _cost) { _tokens = tokens - _cost; return true; }
        _tokens = tokens;
        return false;
    }
}

/// <summary>Userspace half of -m limit (libxt_limit.c).</summary>
internal sealed class LimitMatchExtension : X6MatchExtension<LimitMatch>
{
    public override string Name => "limit";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    private static readonly XtOpt[] Table = { Arg("limit", 0), Arg("limit-burst", 1) };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(LimitMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        if (o.Id == 1)
        {
            m.Burst = (uint)XtOptions.UInt(Name, o, arg!, 0, 10000, a);
            return;
        }
        if (!ParseRate(arg!, out uint avg, a)) throw a.Error($"bad rate \"{arg}\"'");
        m.Avg = avg;
    }

    private static bool ParseRate(string rate, out uint val, ArgReader a)
    {
        val = 0;
        if (!Opt.RateUnit(rate, out uint mult)) return false;
        uint r = Atoi(rate);
        if (r == 0) return false;
        val = LimitMatch.Scale * mult / r;
        if (val == 0) throw a.Error($"Rate too fast \"{rate}\"");
        return true;
    }

    /// <summary>atoi: leading whitespace, sign, digits; stops at the first non-digit.</summary>
    private static uint Atoi(string s)
    {
        int i = 0;
        while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
        bool neg = false;
        if (i < s.Length && s[i] is '+' or '-') neg = s[i++] == '-';
        long v = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i]) && v < int.MaxValue) v = v * 10 + (s[i++] - '0');
        return (uint)(neg ? -v : v);
    }

    internal static void PrintRate(StringBuilder sb, uint period)
    {
        if (period == 0) { sb.Append(" inf"); return; }
        ReadOnlySpan<uint> mult = [LimitMatch.Scale * 24 * 60 * 60, LimitMatch.Scale * 60 * 60, LimitMatch.Scale * 60, LimitMatch.Scale];
        string[] names = ["day", "hour", "min", "sec"];
        int i;
        for (i = 1; i < mult.Length; i++)
            if (period > mult[i] || mult[i] / period < mult[i] % period) break;
        sb.Append(' ').Append((mult[i - 1] / period).ToString(CultureInfo.InvariantCulture)).Append('/').Append(names[i - 1]);
    }

    internal override void Save(LimitMatch m, StringBuilder sb)
    {
        sb.Append(" --limit");
        PrintRate(sb, m.Avg);
        if (m.Burst != 5) sb.Append(" --limit-burst ").Append(m.Burst);
    }

    internal override void List(LimitMatch m, StringBuilder sb)
    {
        sb.Append(" limit: avg");
        PrintRate(sb, m.Avg);
        sb.Append(" burst ").Append(m.Burst);
    }
}
