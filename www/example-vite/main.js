// attend-llm imported by package name, as an app would.
import { Engine } from "attend-llm";

const out = document.getElementById("out");
document.getElementById("go").onclick = async () => {
  out.textContent = "loading…";
  const engine = await Engine.load(document.getElementById("url").value, {
    onProgress: (p) => (out.textContent = `${p.phase} ${(p.loaded / 1e6).toFixed(1)} MB`),
  });
  out.textContent = "";
  const stream = await engine.chat.completions.create({
    messages: [{ role: "user", content: "Say hello in French." }],
    stream: true,
    max_tokens: 32,
  });
  for await (const chunk of stream) out.textContent += chunk.choices[0].delta.content ?? "";
};
