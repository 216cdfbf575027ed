// Signs a provider in through the real pages in headless Chromium, opens the patient list and a
// patient page, checks the chart and the red-flag badge, and saves a screenshot.
// Usage: node dashboard.mjs BASE_URL SETUP_PATH EMAIL PASSWORD PATIENT_ID SCREENSHOT
import puppeteer from "puppeteer-core";

const [base, setupPath, email, password, patientId, screenshot] = process.argv.slice(2);
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const fail = (message) => {
  console.error(`browser test: ${message}`);
  process.exit(1);
};

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1400 });

  await page.goto(base + setupPath);
  await page.type("#password", password);
  await page.type("#password_confirm", password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  if (!page.url().endsWith("/provider/login")) fail(`setup went to ${page.url()}`);

  // Sign in with the keyboard only: type, then Enter submits the form.
  await page.focus("#email");
  await page.keyboard.type(email);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  if (!page.url().endsWith("/provider/patients")) fail(`sign-in went to ${page.url()}`);

  const link = await page.$(`a[href="/provider/patients/${patientId}"]`);
  if (!link) fail("the shared patient is not listed");
  if (!(await page.$("span.flag"))) fail("no red-flag badge on the list");

  await Promise.all([page.waitForNavigation(), link.click()]);
  const svg = await page.$("figure svg");
  if (!svg) fail("no chart on the patient page");
  const box = await svg.boundingBox();
  if (!box || box.width < 100 || box.height < 50) fail(`the chart is not drawn (${JSON.stringify(box)})`);
  const caption = await page.$eval("figcaption", (e) => e.textContent);
  if (!caption.includes("days logged")) fail(`the chart has no text alternative: ${caption}`);
  if (!(await page.$("section.flags span.flag"))) fail("no red flags at the top of the patient page");
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`browser test: signed in, list and patient page checked, screenshot ${screenshot}`);
} finally {
  await browser.close();
}
