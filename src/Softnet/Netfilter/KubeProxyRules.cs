using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter;

/// <summary>What to generate: N ClusterIP services in the shape kube-proxy's iptables mode writes them.</summary>
public sealed class KubeProxyOptions
{
    public int Services { get; init; } = 100;
    public int Seed { get; init; } = 1;
    /// <summary>Every n-th service also gets a NodePort (0: none).</summary>
    public int NodePortEvery { get; init; } = 10;
    /// <summary>Every n-th service has no endpoints: REJECT in filter KUBE-SERVICES instead of a KUBE-SVC chain (0: none).</summary>
    public int NoEndpointsEvery { get; init; } = 50;
    /// <summary>Every n-th service is UDP (DNS-like, port 53) instead of TCP (0: none).</summary>
    public int UdpEvery { get; init; } = 10;
    /// <summary>Most endpoints per service (1..3 by default, drawn from the seed).</summary>
    public int MaxEndpoints { get; init; } = 3;
}

/// <summary>One generated service port: its cluster IP, protocol, port, optional node port, endpoints and chains.</summary>
public sealed record KubeServicePort(
    string Name,
    uint ClusterIp,
    byte Protocol,
    ushort Port,
    ushort NodePort,
    IReadOnlyList<(uint Ip, ushort Port)> Endpoints,
    string SvcChain);

/// <summary>A generated kube-proxy ruleset: the iptables-save text and the services behind it.</summary>
public sealed class KubeProxyRuleset
{
    /// <summary>Service CIDR the cluster IPs come from.</summary>
    public const string ServiceCidr = "10.96.0.0/12";
    /// <summary>Pod CIDR (kube-proxy's --cluster-cidr): KUBE-SVC masquerades sources outside it.</summary>
    public const string ClusterCidr = "10.244.0.0/16";
    /// <summary>Endpoints are drawn from the lower half of the pod CIDR; the upper half is free for client pods.</summary>
    public const string EndpointCidr = "10.244.0.0/17";
    public const uint MasqMark = 0x4000;

    public required string Text { get; init; }
    public required IReadOnlyList<KubeServicePort> Services { get; init; }
    /// <summary>Total rules in the ruleset (all tables).</summary>
    public int RuleCount { get; init; }
}

/// <summary>
/// Generates kube-proxy (1.2x, iptables mode) rulesets in iptables-save syntax, following the chain layout of
/// pkg/proxy/iptables/proxier.go: KUBE-SERVICES → KUBE-SVC-* (masquerade off-cluster sources, then random
/// endpoint choice by -m statistic) → KUBE-SEP-* (hairpin mark + DNAT); KUBE-NODEPORTS → KUBE-EXT-*;
/// KUBE-POSTROUTING masquerades on mark 0x4000/0x4000; filter KUBE-SERVICES rejects services without endpoints.
/// The text loads with iptables-restore and with <see cref="IptablesSaveParser"/>.
/// </summary>
public static class KubeProxyRules
{
    public static KubeProxyRuleset Generate(KubeProxyOptions o)
    {
        if (o.Services < 0 || o.Services > 200_000) throw new ArgumentOutOfRangeException(nameof(o), "Services must be 0..200000");
        var rng = new Random(o.Seed);
        var (svcBase, _) = Ipv4.ParseCidr(KubeProxyRuleset.ServiceCidr);
        var (podBase, _) = Ipv4.ParseCidr(KubeProxyRuleset.EndpointCidr);
        var services = new List<KubeServicePort>(o.Services);
        int nextEndpoint = 0, nextNodePort = 30000;
        for (int i = 0; i < o.Services; i++)
        {
            // An odd multiplier is a bijection on the 20 host bits of the /12: unique, scattered cluster IPs.
            uint host = (uint)((ulong)(i + 1) * 2654435761UL) & 0xFFFFF;
            if (host == 0xFFFFF) host = 0xFFFFE - (uint)i % 7;
            uint clusterIp = svcBase | host;
            bool udp = o.UdpEvery > 0 && i % o.UdpEvery == o.UdpEvery - 1;
            byte proto = udp ? (byte)17 : (byte)6;
            ushort port = udp ? (ushort)53 : (ushort)(i % 3 == 0 ? 80 : i % 3 == 1 ? 443 : 8080);
            string ns = "ns-" + (i % 97).ToString(CultureInfo.InvariantCulture);
            string portName = udp ? "dns" : port == 80 ? "http" : port == 443 ? "https" : "web";
            string name = $"{ns}/svc-{i.ToString(CultureInfo.InvariantCulture)}:{portName}";
            ushort nodePort = 0;
            if (!udp && o.NodePortEvery > 0 && i % o.NodePortEvery == 0 && nextNodePort <= 32767) nodePort = (ushort)nextNodePort++;
            var eps = new List<(uint, ushort)>();
            bool none = o.NoEndpointsEvery > 0 && i % o.NoEndpointsEvery == o.NoEndpointsEvery - 1;
            int n = none ? 0 : 1 + rng.Next(Math.Max(1, o.MaxEndpoints));
            ushort target = udp ? (ushort)53 : (ushort)(port == 443 ? 8443 : 8080);
            for (int e = 0; e < n; e++)
            {
                int k = nextEndpoint++;
                eps.Add((podBase + (uint)((k / 250) << 8) + (uint)(k % 250 + 2), target));
            }
            string protoName = udp ? "udp" : "tcp";
            services.Add(new KubeServicePort(name, clusterIp, proto, port, nodePort, eps, "KUBE-SVC-" + Hash(name + protoName)));
        }
        var (text, rules) = Render(services);
        return new KubeProxyRuleset { Text = text, Services = services, RuleCount = rules };
    }

    private static (string Text, int Rules) Render(List<KubeServicePort> services)
    {
        const string Masq = "0x4000/0x4000";
        var chains = new List<string>();
        var byChain = new Dictionary<string, List<string>>();
        void Rule(string chain, string spec)
        {
            if (!byChain.TryGetValue(chain, out var l)) { byChain[chain] = l = new List<string>(); chains.Add(chain); }
            l.Add(spec);
        }
        foreach (var c in new[] { "PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-SERVICES" })
            Rule(c, "");
        Rule("PREROUTING", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
        Rule("OUTPUT", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
        Rule("POSTROUTING", "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING");
        Rule("KUBE-MARK-MASQ", $"-j MARK --set-xmark {Masq}");
        Rule("KUBE-POSTROUTING", $"-m mark ! --mark {Masq} -j RETURN");
        Rule("KUBE-POSTROUTING", "-j MARK --set-xmark 0x4000/0x0");
        Rule("KUBE-POSTROUTING", "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully");

        var filter = new List<string>
        {
            "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS",
            "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
            "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
            "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
            "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
            $"-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {Masq} -j ACCEPT",
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        };

        foreach (var s in services)
        {
            string p = s.Protocol == 17 ? "udp" : "tcp";
            string vip = Ipv4.Format(s.ClusterIp) + "/32";
            if (s.Endpoints.Count == 0)
            {
                filter.Add($"-A KUBE-SERVICES -d {vip} -p {p} -m comment --comment \"{s.Name} has no endpoints\" -m {p} --dport {s.Port} -j REJECT --reject-with icmp-port-unreachable");
                if (s.NodePort != 0)
                    filter.Add($"-A KUBE-EXTERNAL-SERVICES -p {p} -m comment --comment \"{s.Name} has no endpoints\" -m addrtype --dst-type LOCAL -m {p} --dport {s.NodePort} -j REJECT --reject-with icmp-port-unreachable");
                continue;
            }
            Rule("KUBE-SERVICES", $"-d {vip} -p {p} -m comment --comment \"{s.Name} cluster IP\" -m {p} --dport {s.Port} -j {s.SvcChain}");
            Rule(s.SvcChain, $"! -s {KubeProxyRuleset.ClusterCidr} -d {vip} -p {p} -m comment --comment \"{s.Name} cluster IP\" -m {p} --dport {s.Port} -j KUBE-MARK-MASQ");
            int n = s.Endpoints.Count;
            for (int e = 0; e < n; e++)
            {
                var (ip, port) = s.Endpoints[e];
                string ep = $"{Ipv4.Format(ip)}:{port.ToString(CultureInfo.InvariantCulture)}";
                string sep = "KUBE-SEP-" + Hash(s.Name + p + ep);
                // kube-proxy: probability 1/(n-i) for all but the last endpoint, as the kernel stores and prints it.
                string stat = e < n - 1 ? $" -m statistic --mode random --probability {Probability(n - e)}" : "";
                Rule(s.SvcChain, $"-m comment --comment \"{s.Name} -> {ep}\"{stat} -j {sep}");
                Rule(sep, $"-s {Ipv4.Format(ip)}/32 -m comment --comment \"{s.Name}\" -j KUBE-MARK-MASQ");
                Rule(sep, $"-p {p} -m comment --comment \"{s.Name}\" -m {p} -j DNAT --to-destination {ep}");
            }
            if (s.NodePort != 0)
            {
                string ext = "KUBE-EXT-" + s.SvcChain["KUBE-SVC-".Length..];
                Rule("KUBE-NODEPORTS", $"-p {p} -m comment --comment \"{s.Name}\" -m {p} --dport {s.NodePort} -j {ext}");
                Rule(ext, $"-m comment --comment \"masquerade traffic for {s.Name} external destinations\" -j KUBE-MARK-MASQ");
                Rule(ext, $"-j {s.SvcChain}");
            }
        }
        Rule("KUBE-SERVICES", "-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS");

        var sb = new StringBuilder();
        int rules = 0;
        sb.Append("# Generated by Softnet KubeProxyRules (kube-proxy iptables mode layout)\n*nat\n");
        foreach (var c in chains)
            sb.Append(':').Append(c).Append(c is "PREROUTING" or "INPUT" or "OUTPUT" or "POSTROUTING" ? " ACCEPT [0:0]\n" : " - [0:0]\n");
        foreach (var c in chains)
            foreach (var spec in byChain[c])
            {
                if (spec.Length == 0) continue;
                sb.Append("-A ").Append(c).Append(' ').Append(spec).Append('\n');
                rules++;
            }
        sb.Append("COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        foreach (var c in new[] { "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES" })
            sb.Append(':').Append(c).Append(" - [0:0]\n");
        foreach (var line in filter) { sb.Append(line).Append('\n'); rules++; }
        sb.Append("COMMIT\n");
        return (sb.ToString(), rules);
    }

    /// <summary>1/n as xt_statistic keeps it (rounded to 2^-31) and iptables-save prints it.</summary>
    private static string Probability(int n)
    {
        uint scaled = (uint)Math.Round(1.0 / n * 0x80000000, MidpointRounding.AwayFromZero);
        return (1.0 * scaled / 0x80000000).ToString("F11", CultureInfo.InvariantCulture);
    }

    /// <summary>kube-proxy's chain suffix: base32 of SHA-256 of the service port name (+ protocol, + endpoint), 16 characters.</summary>
    private static string Hash(string s)
    {
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        Span<byte> h = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(s), h);
        var sb = new StringBuilder(16);
        int bits = 0, acc = 0, i = 0;
        while (sb.Length < 16)
        {
            if (bits < 5) { acc = (acc << 8) | h[i++]; bits += 8; }
            sb.Append(Alphabet[(acc >> (bits - 5)) & 31]);
            bits -= 5;
        }
        return sb.ToString();
    }
}
