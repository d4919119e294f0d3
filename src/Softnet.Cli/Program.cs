using System.CommandLine;

namespace Softnet.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("softnet: the Linux packet receive path, rebuilt in user space")
        {
            ReplayCommand.Create(),
            GenCommand.Create(),
            RssCommand.Create(),
            ExperimentCommand.Create(),
            RulesCommand.Create(),
            XdpCommand.Create(),
            RunCommand.Create(),
            FilterCommand.Create(),
        };
        return root.Parse(args).Invoke();
    }
}
