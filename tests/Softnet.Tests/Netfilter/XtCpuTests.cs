using Softnet.Napi;
using Softnet.Netfilter;
using Softnet.Netfilter.Xtables;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;

namespace Softnet.Tests.Netfilter;

/// <summary>
/// -m cpu (xt_cpu.c, libxt_cpu.c): the texts are what iptables 1.8.9 (nf_tables) printed for these rules in a namespace
/// of this machine (iptables-save, ip6tables-save, iptables -nvL); the match compares the CPU the engine is running.
/// Softnet.KernelTests' placement tests compare its counts with the kernel's.
/// </summary>
public class XtCpuTests
{
    private const string Rules = """
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A PREROUTING -m cpu ! --cpu 1 -j ACCEPT
        -A PREROUTING -m cpu --cpu 0x0 -j ACCEPT
        -A PREROUTING -m cpu --cpu 3
        -A PREROUTING -m cpu --cpu 4294967295
        COMMIT

        """;

    /// <summary>iptables-save's rules for <see cref="Rules"/> (0x0 printed in decimal).</summary>
    private const string KernelSave = """
        -A PREROUTING -m cpu ! --cpu 1 -j ACCEPT
        -A PREROUTING -m cpu --cpu 0 -j ACCEPT
        -A PREROUTING -m cpu --cpu 3
        -A PREROUTING -m cpu --cpu 4294967295
        """;

    /// <summary>iptables -t raw -nvL's PREROUTING for <see cref="Rules"/>.</summary>
    private const string KernelList = """
        Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
         pkts bytes target     prot opt in     out     source               destination         
            0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            cpu ! 1
            0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            cpu 0
            0     0            0    --  *      *       0.0.0.0/0            0.0.0.0/0            cpu 3
            0     0            0    --  *      *       0.0.0.0/0            0.0.0.0/0            cpu 4294967295
        """;

    private static string RuleLines(NetfilterTables t)
        => string.Join('\n', IptablesSave.Write(t, counters: false).Split('\n').Where(l => l.StartsWith("-A ", StringComparison.Ordinal)));

    [Fact]
    public void Cpu_rules_save_and_list_as_iptables_prints_them()
    {
        var t = IptablesSaveParser.Parse(Rules, "iptables.save");
        Assert.Equal(KernelSave.ReplaceLineEndings("\n"), RuleLines(t));
        // What we print parses back to the same text.
        Assert.Equal(RuleLines(t), RuleLines(IptablesSaveParser.Parse("*raw\n" + RuleLines(t) + "\nCOMMIT\n")));
        string list = IptablesSave.List(t[TableKind.Raw]!);
        Assert.StartsWith(KernelList.ReplaceLineEndings("\n"), list);
        Assert.IsType<CpuMatch>(t[TableKind.Raw]!.GetChain("PREROUTING")!.Rules[0].Matches[0]);
    }

    [Fact]
    public void Ip6tables_loads_the_family_independent_match()
    {
        var t = IptablesSaveParser.Parse("*raw\n-A PREROUTING -m cpu ! --cpu 7\nCOMMIT\n", "ip6tables.save", NetfilterTables.CreateIpv6());
        Assert.Equal("-A PREROUTING -m cpu ! --cpu 7", RuleLines(t));
        Assert.Contains("::/0                 ::/0                 cpu ! 7\n", IptablesSave.List(t[TableKind.Raw]!));
    }

    [Theory]
    [InlineData("-A PREROUTING -m cpu", "cpu: option \"--cpu\" must be specified")]
    [InlineData("-A PREROUTING -m cpu --cpu", "option \"--cpu\" requires an argument")]
    [InlineData("-A PREROUTING -m cpu --cpu x", "cpu: bad value for option \"--cpu\", or out of range (0-4294967295).")]
    [InlineData("-A PREROUTING -m cpu --cpu 1z", "cpu: bad value for option \"--cpu\", or out of range (0-4294967295).")]
    [InlineData("-A PREROUTING -m cpu --cpu -1", "cpu: bad value for option \"--cpu\", or out of range (0-4294967295).")]
    [InlineData("-A PREROUTING -m cpu --cpu 4294967296", "cpu: bad value for option \"--cpu\", or out of range (0-4294967295).")]
    [InlineData("-A PREROUTING -m cpu --cpu 1 --cpu 2", "cpu: option \"--cpu\" can only be used once.")]
    public void Bad_cpu_options_are_refused_with_file_and_line(string rule, string reason)
    {
        var e = Assert.Throws<IptablesParseException>(() => IptablesSaveParser.Parse($"*raw\n:PREROUTING ACCEPT [0:0]\n{rule}\nCOMMIT\n", "iptables.save"));
        Assert.Equal("iptables.save", e.File);
        Assert.Equal(3, e.Line);
        Assert.Equal(reason, e.Reason);
    }

    /// <summary>A poller that runs a -m cpu ruleset of its own on each frame it polls.</summary>
    private sealed class CpuRulesPoller : INapiPoller
    {
        private int _pending;
        private readonly byte[] _pkt = Udp("10.0.0.1", 1, "10.0.0.2", 2);
        public readonly NetfilterTables Tables = IptablesSaveParser.Parse("*raw\n-A PREROUTING -m cpu --cpu 0\n-A PREROUTING -m cpu ! --cpu 0\nCOMMIT\n");

        public void Produce(int n) => Interlocked.Add(ref _pending, n);
        public bool HasWork => Volatile.Read(ref _pending) > 0;

        public int Poll(int budget)
        {
            int n = Math.Min(budget, Volatile.Read(ref _pending));
            for (int i = 0; i < n; i++)
            {
                var ctx = Ctx(_pkt);
                Tables.Evaluate(Tables[TableKind.Raw]!, HookPoint.PreRouting, ref ctx);
            }
            Interlocked.Add(ref _pending, -n);
            return n;
        }

        public long[] Counts => [.. Tables[TableKind.Raw]!.GetChain("PREROUTING")!.Rules.Select(r => r.Packets)];
    }

    [Fact]
    public void Threaded_workers_match_their_own_cpu()
    {
        using var engine = new NapiEngine(new NapiEngineOptions { Mode = NapiMode.Threaded, Cpus = [0, 1], PinThreads = false });
        var pollers = new[] { new CpuRulesPoller(), new CpuRulesPoller() };
        var irqs = pollers.Select((p, i) => engine.AddQueue(p, Softnet.Nic.CpuMask.Of(i))).ToArray();
        engine.Start();
        for (int i = 0; i < 2; i++)
        {
            pollers[i].Produce(100);
            irqs[i].NotifyFrames(100, engine.NowNs);
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (pollers.Any(p => p.HasWork) && sw.ElapsedMilliseconds < 10_000) Thread.Sleep(1);
        engine.Stop();
        Assert.Equal(new long[] { 100, 0 }, pollers[0].Counts);
        Assert.Equal(new long[] { 0, 100 }, pollers[1].Counts);
    }

    [Fact]
    public void Cpu_matches_the_cpu_the_engine_runs_with_and_without_inversion()
    {
        var t = IptablesSaveParser.Parse("""
            *raw
            :PREROUTING ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A PREROUTING -m cpu --cpu 0
            -A PREROUTING -m cpu --cpu 1
            -A PREROUTING -m cpu ! --cpu 0
            -A PREROUTING -m cpu ! --cpu 1
            COMMIT
            """);
        var rules = t[TableKind.Raw]!.GetChain("PREROUTING")!.Rules;
        var engine = new NapiEngine(new NapiEngineOptions { Mode = NapiMode.Deterministic, Cpus = [0, 1] });
        var pkt = Udp("10.0.0.1", 1, "10.0.0.2", 2);
        void Run()
        {
            var ctx = Ctx(pkt);
            t.Evaluate(t[TableKind.Raw]!, HookPoint.PreRouting, ref ctx);
        }
        try
        {
            engine.Current = engine.Cpus[1];
            Assert.Equal(1, NapiEngine.ProcessorId);
            Run();
            Assert.Equal(new long[] { 0, 1, 1, 0 }, rules.Select(r => r.Packets));
            engine.Current = engine.Cpus[0];
            Run();
            Run();
            Assert.Equal(new long[] { 2, 1, 1, 2 }, rules.Select(r => r.Packets));
            // Between rounds: the engine's first CPU.
            engine.Current = engine.Cpus[1];
            engine.Current = null;
            Assert.Equal(0, NapiEngine.ProcessorId);
        }
        finally
        {
            engine.Current = null;
        }
    }
}
